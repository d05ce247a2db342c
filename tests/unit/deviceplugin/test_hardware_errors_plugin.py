"""The device plugin reading kernel messages (docs/architecture.md, "Hardware errors"): a
Neuron hardware-error line for device 3 makes device 3 and its cores Unhealthy in ListAndWatch,
posts one Warning Event and patches the node condition NeuronHealth; a restart in the same boot
keeps device 3 unhealthy after the line is gone."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dp_harness import NEURON, NEURONCORE, FakeApi, FakeKubelet, wait_until
from neuron_k8s.deviceplugin.plugin import Plugin
from neuron_k8s.nodecondition import CONDITION, HARDWARE_ERROR, STRATEGIC_MERGE

StartPlugin = Callable[..., Plugin]
NODE = "node-a"
TYPE = "inf2.48xlarge"  # 12 devices x 2 cores: device 3 holds cores 6 and 7
LINE = "6,901,123456789,-;NEURON_HW_ERR=HBM_UNCORRECTABLE_ERROR nd-id=3 action=TERMINATE_INSTANCE"


def hardware(root: Path) -> dict[str, Any]:
    (root / "boot_id").write_text("boot-1\n")
    (root / "kmsg").write_text("6,900,123456000,-;neuron: driver loaded\n")
    return {
        "fake_instance_type": TYPE,
        "kernel_messages": str(root / "kmsg"),
        "hardware_error_state": str(root / "state" / "hardware-errors.json"),
        "boot_id_file": str(root / "boot_id"),
    }


def condition_patches(api: FakeApi) -> list[dict[str, Any]]:
    return [
        c
        for path, ctype, body in list(api.patches)
        if path == f"/api/v1/nodes/{NODE}/status" and ctype == STRATEGIC_MERGE
        for c in body["status"]["conditions"]
        if c["type"] == CONDITION
    ]


def test_a_hardware_error_line_makes_device_3_unhealthy_with_an_event_and_the_condition(
    kubelet: FakeKubelet, api: FakeApi, start_plugin: StartPlugin, short_dir: str
) -> None:
    api.add_node(NODE, {"node.kubernetes.io/instance-type": TYPE})
    root = Path(short_dir)
    overrides = hardware(root)
    kubeconfig = api.kubeconfig(os.path.join(short_dir, "kubeconfig"))
    start_plugin(kubeconfig=kubeconfig, node_name=NODE, **overrides)
    wait_until(lambda: len(kubelet.health(NEURON)) == 12, 5, "twelve devices")
    wait_until(lambda: condition_patches(api), 5, "the condition written at start")
    assert condition_patches(api)[-1]["status"] == "False"
    assert kubelet.unhealthy(NEURON) == set()
    with (root / "kmsg").open("a") as f:
        f.write(LINE + "\n")
    wait_until(lambda: kubelet.unhealthy(NEURON) == {"3"}, 5, "device 3 unhealthy")
    wait_until(lambda: kubelet.unhealthy(NEURONCORE) == {"6", "7"}, 5, "its cores unhealthy")
    wait_until(lambda: [e for e in api.events if e["reason"] == HARDWARE_ERROR], 5, "the Event")
    (event,) = [e for e in api.events if e["reason"] == HARDWARE_ERROR]
    assert event["type"] == "Warning" and "Neuron device 3" in event["message"]
    wait_until(lambda: condition_patches(api)[-1]["status"] == "True", 5, "condition True")
    latest = condition_patches(api)[-1]
    assert latest["reason"] == HARDWARE_ERROR
    assert "HBM_UNCORRECTABLE_ERROR on device 3" in latest["message"]


def test_device_3_stays_unhealthy_after_a_restart_without_its_line(
    kubelet: FakeKubelet, start_plugin: StartPlugin, short_dir: str
) -> None:
    root = Path(short_dir)
    overrides = hardware(root)
    with (root / "kmsg").open("a") as f:
        f.write(LINE + "\n")
    first = start_plugin(**overrides)
    wait_until(lambda: kubelet.unhealthy(NEURON) == {"3"}, 5, "device 3 unhealthy")
    first.stop()
    kubelet.restart()  # forgets what the first plugin advertised
    (root / "kmsg").write_text("")  # the ring buffer wrapped
    start_plugin(**overrides)
    wait_until(lambda: len(kubelet.health(NEURON)) == 12, 5, "the new plugin's devices")
    assert kubelet.unhealthy(NEURON) == {"3"}
