"""The DRA driver reading kernel messages (docs/architecture.md, "Hardware errors"): a Neuron
hardware-error line for device 3 taints device 3 in the slices, posts one Warning Event and
patches the node condition NeuronHealth; a restart in the same boot keeps the taint after the
line is gone."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dra_harness import NODE, Dirs, FakeApi, FakeKubelet, driver_config, ready, wait_until
from neuron_k8s.dra.driver import Driver
from neuron_k8s.kube import KubeClient
from neuron_k8s.nodecondition import CONDITION, HARDWARE_ERROR, STRATEGIC_MERGE

LINE = "[ 8812.004211] NEURON_HW_ERR=DMA_ERROR nd-id=3 nc-id=1 action=TERMINATE_INSTANCE"


class StatusRecordingClient(KubeClient):
    """The driver's client, keeping the node-status patches (the fake API has no node status)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.conditions: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def request(self, method: str, path: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        if method == "PATCH" and path == f"/api/v1/nodes/{NODE}/status":
            assert kwargs["content_type"] == STRATEGIC_MERGE
            with self._lock:
                self.conditions += kwargs["body"]["status"]["conditions"]
            return {}
        return super().request(method, path, *args, **kwargs)

    def latest(self) -> dict[str, Any]:
        """The condition as last patched ({} before any patch)."""
        with self._lock:
            found = [c for c in self.conditions if c["type"] == CONDITION]
            return found[-1] if found else {}


@pytest.fixture
def run(api: FakeApi, kubelet: FakeKubelet, dirs: Dirs) -> Iterator[Any]:
    started: list[Driver] = []

    def start(client: KubeClient, **overrides: Any) -> Driver:
        driver = Driver(driver_config(dirs, **overrides), client)
        started.append(driver)
        driver.start()
        wait_until(lambda: ready(driver), 10, "the driver registered, published, synced")
        return driver

    yield start
    for d in started:
        d.stop()


def hardware(root: Path) -> dict[str, Any]:
    (root / "boot_id").write_text("boot-1\n")
    (root / "dmesg.txt").write_text("[    0.000000] Linux version 6.1\n")
    return {
        "kernel_messages": str(root / "dmesg.txt"),
        "hardware_error_state": str(root / "state" / "hardware-errors.json"),
        "boot_id_file": str(root / "boot_id"),
    }


def tainted(api: FakeApi) -> list[str]:
    return [
        d["name"] for s in api.node_slices(NODE) for d in s["spec"]["devices"] if d.get("taints")
    ]


def test_a_hardware_error_line_taints_device_3_with_an_event_and_the_condition(
    run: Any, api: FakeApi, tmp_path: Path
) -> None:
    client = StatusRecordingClient(api.url)
    overrides = hardware(tmp_path)
    run(client, **overrides)
    wait_until(client.latest, 5, "the condition written at start")
    assert client.latest()["status"] == "False"
    assert tainted(api) == []
    with open(overrides["kernel_messages"], "a") as f:
        f.write(LINE + "\n")
    wait_until(lambda: tainted(api) == ["neurondevice3"], 10, "device 3 tainted")
    wait_until(lambda: [e for e in api.events if e["reason"] == HARDWARE_ERROR], 5, "the Event")
    (event,) = [e for e in api.events if e["reason"] == HARDWARE_ERROR]
    assert event["type"] == "Warning" and "Neuron device 3" in event["message"]
    wait_until(lambda: client.latest()["status"] == "True", 5, "condition True")
    latest = client.latest()
    assert latest["reason"] == HARDWARE_ERROR
    assert "DMA_ERROR on device 3" in latest["message"]


def test_device_3_stays_tainted_after_a_restart_without_its_line(
    run: Any, api: FakeApi, tmp_path: Path
) -> None:
    overrides = hardware(tmp_path)
    with open(overrides["kernel_messages"], "a") as f:
        f.write(LINE + "\n")
    first = run(KubeClient.for_url(api.url), **overrides)
    wait_until(lambda: tainted(api) == ["neurondevice3"], 10, "device 3 tainted")
    first.stop()
    api.delete_all_slices()
    Path(overrides["kernel_messages"]).write_text("")  # the file was rotated
    run(KubeClient.for_url(api.url), **overrides)
    assert tainted(api) == ["neurondevice3"]
    assert len([e for e in api.events if e["reason"] == HARDWARE_ERROR]) == 1
