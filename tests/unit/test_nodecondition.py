"""The Node condition NeuronHealth and the Warning Event for hardware errors
(neuron_k8s/nodecondition.py), against a fake client that merges conditions by type as the API
server's strategic merge patch does."""

from __future__ import annotations

import copy
import threading
from typing import Any, cast

from neuron_k8s.hardwareerrors import Fault
from neuron_k8s.kube import ApiError, KubeClient
from neuron_k8s.nodecondition import (
    CONDITION,
    HARDWARE_ERROR,
    NO_ERROR,
    STRATEGIC_MERGE,
    NodeConditionWriter,
    event_poster,
    hardware_error_event,
    wanted_condition,
)
from waiting import wait_until

NODE = "node-a"
T0 = 1700000000.0  # 2023-11-14T22:13:20Z


class FakeClient:
    def __init__(self, conditions: list[dict[str, Any]] | None = None) -> None:
        self.node: dict[str, Any] = {
            "metadata": {"name": NODE},
            "status": {"conditions": conditions or []},
        }
        self.patches: list[tuple[str, str, dict[str, Any]]] = []
        self.failures = 0  # requests to refuse before answering
        self.lock = threading.Lock()

    def _maybe_fail(self) -> None:
        if self.failures:
            self.failures -= 1
            raise ApiError(0, "Unreachable", "connection refused")

    def get(self, path: str, params: Any = None, timeout: Any = None) -> dict[str, Any]:
        with self.lock:
            self._maybe_fail()
            assert path == f"/api/v1/nodes/{NODE}"
            return copy.deepcopy(self.node)

    def request(
        self, method: str, path: str, body: Any = None, content_type: str = "", **_: Any
    ) -> dict[str, Any]:
        with self.lock:
            self._maybe_fail()
            self.patches.append((method + " " + path, content_type, body))
            conditions = self.node["status"]["conditions"]
            for patch in body["status"]["conditions"]:
                old = next((c for c in conditions if c["type"] == patch["type"]), None)
                if old is None:
                    conditions.append(dict(patch))
                else:
                    old.update(patch)
            return copy.deepcopy(self.node)

    def condition(self) -> dict[str, Any] | None:
        with self.lock:
            found = [c for c in self.node["status"]["conditions"] if c["type"] == CONDITION]
            return dict(found[0]) if found else None


def writer(client: FakeClient, now: list[float]) -> NodeConditionWriter:
    w = NodeConditionWriter(
        cast(KubeClient, client), NODE, retry=0.01, max_retry=0.05, clock=lambda: now[0]
    )
    w.start()
    return w


def test_an_error_sets_the_condition_true_naming_devices_and_kinds() -> None:
    client, now = FakeClient(), [T0]
    w = writer(client, now)
    w.set({3: "HBM_UNCORRECTABLE_ERROR", 5: "DMA_ERROR", 7: "DMA_ERROR"})
    wait_until(lambda: client.condition() is not None, 5, "the condition")
    w.stop()
    ((where, ctype, _),) = client.patches
    assert (where, ctype) == (f"PATCH /api/v1/nodes/{NODE}/status", STRATEGIC_MERGE)
    c = client.condition()
    assert c is not None
    assert (c["status"], c["reason"]) == ("True", HARDWARE_ERROR)
    assert "DMA_ERROR on devices 5, 7" in c["message"]
    assert "HBM_UNCORRECTABLE_ERROR on device 3" in c["message"]
    assert c["lastTransitionTime"] == c["lastHeartbeatTime"] == "2023-11-14T22:13:20Z"


def test_no_error_on_a_node_without_the_condition_writes_it_false() -> None:
    client = FakeClient()
    w = writer(client, [T0])
    w.set({})
    wait_until(lambda: client.condition() is not None, 5, "the condition")
    w.stop()
    c = client.condition()
    assert c is not None and (c["status"], c["reason"]) == ("False", NO_ERROR)


def test_no_error_on_a_node_already_false_writes_nothing() -> None:
    held = {"type": CONDITION, "status": "False", "reason": "NeuronHasNoError", "message": "x"}
    client = FakeClient([held])
    idle = NodeConditionWriter(cast(KubeClient, client), NODE)  # not started: write_once only
    idle.write_once(wanted_condition({}))
    assert client.patches == []


def test_no_error_on_a_node_left_true_writes_false_with_a_transition() -> None:
    held = {
        "type": CONDITION,
        "status": "True",
        "reason": HARDWARE_ERROR,
        "message": "old",
        "lastTransitionTime": "2020-01-01T00:00:00Z",
    }
    client = FakeClient([held])
    w = writer(client, [T0])
    w.set({})
    wait_until(lambda: len(client.patches) == 1, 5, "one patch")
    w.stop()
    c = client.condition()
    assert c is not None and c["status"] == "False"
    assert c["lastTransitionTime"] == "2023-11-14T22:13:20Z"


def test_a_new_device_changes_the_message_but_not_the_transition_time() -> None:
    client, now = FakeClient(), [T0]
    w = writer(client, now)
    w.set({3: "DMA_ERROR"})
    wait_until(lambda: len(client.patches) == 1, 5, "the first patch")
    now[0] = T0 + 60
    w.set({3: "DMA_ERROR", 4: "DMA_ERROR"})
    wait_until(lambda: len(client.patches) == 2, 5, "the second patch")
    w.stop()
    assert "lastTransitionTime" not in client.patches[1][2]["status"]["conditions"][0]
    c = client.condition()
    assert c is not None and "devices 3, 4" in c["message"]
    assert c["lastTransitionTime"] == "2023-11-14T22:13:20Z"
    assert c["lastHeartbeatTime"] == "2023-11-14T22:14:20Z"


def test_the_same_errors_again_write_nothing_more() -> None:
    client = FakeClient()
    idle = NodeConditionWriter(cast(KubeClient, client), NODE)  # not started: write_once only
    for _ in range(3):
        idle.write_once(wanted_condition({3: "DMA_ERROR"}))
    assert len(client.patches) == 1


def test_api_errors_are_retried_until_the_condition_is_written() -> None:
    client = FakeClient()
    client.failures = 3
    w = writer(client, [T0])
    w.set({3: "DMA_ERROR"})  # never raises, whatever the API does
    wait_until(lambda: client.condition() is not None, 5, "the condition after retries")
    w.stop()
    c = client.condition()
    assert c is not None and c["status"] == "True"


def test_the_event_names_the_device_the_kind_and_the_message() -> None:
    fault = Fault("SRAM_UNCORRECTABLE_ERROR", T0, "NEURON_HW_ERR=SRAM_UNCORRECTABLE_ERROR nd-id=3")
    event = hardware_error_event(NODE, "uid-1", 3, fault, "neuron-device-plugin")
    assert (event["type"], event["reason"]) == ("Warning", HARDWARE_ERROR)
    assert event["involvedObject"] == {
        "apiVersion": "v1",
        "kind": "Node",
        "name": NODE,
        "uid": "uid-1",
    }
    assert "Neuron device 3" in event["message"] and fault.message in event["message"]


def test_the_event_for_a_line_naming_no_device_says_every_device() -> None:
    event = hardware_error_event(NODE, None, None, Fault("DMA_ERROR", T0, "m"), "c")
    assert "every Neuron device" in event["message"]


def test_no_events_without_the_api_or_the_node_name() -> None:
    assert event_poster(None, NODE, NODE, "c") is None
    assert event_poster(cast(KubeClient, FakeClient()), "", None, "c") is None
