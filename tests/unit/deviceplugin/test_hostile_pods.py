"""Pod owners can write the record keys (docs/security.md): a record the plugin cannot use is
logged once, counted, and otherwise ignored. It never raises out of the pod view, never grows
the plugin, and never changes what other pods of the node are answered (review A1)."""

from __future__ import annotations

import json
import logging
import os
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from dp_harness import NEURON, NEURONCORE, Admission, FakeApi, make_pod, wait_until
from neuron_k8s.allocator import Resource
from neuron_k8s.deviceplugin.metrics import Metrics
from neuron_k8s.deviceplugin.plugin import Plugin
from neuron_k8s.deviceplugin.podview import NodePod, PodView, node_pod
from neuron_k8s.kube import KubeClient
from neuron_k8s.pods import ALLOCATION, AWS_NEURON_IDS
from planned_pods import NODE, SHAPE, cores, put, put_planned

Node = Callable[..., tuple[Plugin, Admission]]


def record(ids: list[int], cores: list[int], devices: list[int], node: str = NODE) -> str:
    """An allocation annotation for one container `m` of aws.amazon.com/neuroncore."""
    container = {"name": "m", "resource": NEURONCORE, "ids": ids, "cores": cores}
    return json.dumps({"node": node, "containers": [{**container, "devices": devices}]})


# Records a pod owner could write on a pod asking for `m: neuroncore 2`.
HOSTILE = {
    "empty core list": {ALLOCATION: record([0, 1], [], [0])},
    "negative core": {ALLOCATION: record([0, 1], [-1, 1], [0])},
    "huge index": {ALLOCATION: record([0, 1], [0, 10**9], [0])},
    "another node's record": {ALLOCATION: record([0, 1], [0, 1], [0], node="node-b")},
    "count not matching the request": {ALLOCATION: record([0], [0], [0])},
    "a range of ten million IDs": {AWS_NEURON_IDS: "0-10000000"},
    "unreadable JSON": {ALLOCATION: "{" * 100_000},
}


def hostile(name: str, annotations: dict[str, str]) -> dict[str, Any]:
    return make_pod(name, NODE, [("m", NEURONCORE, 2)], annotations)


@pytest.mark.parametrize("case", list(HOSTILE))
def test_an_unusable_record_is_no_plan_and_says_why(case: str) -> None:
    pod = node_pod(hostile("evil", HOSTILE[case]), SHAPE, NODE)
    assert pod.plan is None
    assert pod.problem is not None and pod.problem[0]
    assert pod.requests  # what the pod asks for is still known: the kubelet may admit it


def test_a_record_naming_this_node_is_used() -> None:
    pod = node_pod(hostile("good", {ALLOCATION: record([2, 3], [2, 3], [1])}), SHAPE, NODE)
    assert pod.problem is None and pod.plan is not None
    assert [(a.container, a.placement.cores) for a in pod.plan] == [("m", (2, 3))]


def test_a_range_of_ten_million_ids_is_read_in_little_memory() -> None:
    obj = hostile("evil", {AWS_NEURON_IDS: "0-10000000"})
    tracemalloc.start()
    try:
        node_pod(obj, SHAPE, NODE)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024


@pytest.fixture
def view(api: FakeApi, short_dir: str) -> Iterator[tuple[PodView, Metrics, list[str]]]:
    """The plugin's pod view on NODE against the API stand-in, and the warnings it logs."""
    client = KubeClient.from_config(api.kubeconfig(os.path.join(short_dir, "kubeconfig")))
    assert client is not None
    metrics = Metrics()
    changes: list[tuple[NodePod | None, NodePod | None]] = []
    pod_view = PodView(client, NODE, SHAPE, metrics, lambda old, new: changes.append((old, new)))
    warnings: list[str] = []

    class Collect(logging.Handler):
        def emit(self, entry: logging.LogRecord) -> None:
            if entry.levelno >= logging.WARNING:
                warnings.append(entry.getMessage())

    handler = Collect()
    logger = logging.getLogger("neuron_k8s.deviceplugin.pods")
    logger.addHandler(handler)
    yield pod_view, metrics, warnings
    logger.removeHandler(handler)
    pod_view.stop()


def test_the_pod_view_lists_a_node_whose_pods_carry_unusable_records(
    api: FakeApi, view: tuple[PodView, Metrics, list[str]]
) -> None:
    # Failed on e7426af: the empty core list raised in node_pod, so the list never completed.
    pod_view, _, _ = view
    for n, notes in enumerate(HOSTILE.values()):
        api.put_pod(hostile(f"evil-{n}", notes))
    api.put_pod(hostile("good", {ALLOCATION: record([2, 3], [2, 3], [1])}))
    pod_view.start()
    wait_until(lambda: pod_view.synced, 5, "pods listed")
    pods = {p.name: p for p in pod_view.pods().values()}
    assert len(pods) == len(HOSTILE) + 1
    assert pods["good"].plan is not None
    assert all(p.plan is None for name, p in pods.items() if name != "good")


def test_an_unusable_record_is_logged_and_counted_once_not_at_every_event(
    api: FakeApi, view: tuple[PodView, Metrics, list[str]]
) -> None:
    pod_view, metrics, warnings = view
    pod_view.start()
    wait_until(lambda: pod_view.synced, 5, "pods listed")
    evil = hostile("evil", HOSTILE["negative core"])
    api.put_pod(evil)
    evil["status"]["containerStatuses"] = [{"name": "m"}]  # the kubelet reports on it
    api.put_pod(evil, "MODIFIED")
    wait_until(lambda: any(p.started for p in pod_view.pods().values()), 5, "both events")
    assert warnings == ["pod record not used"]
    count = metrics.registry.get_sample_value(
        "neuron_device_plugin_unusable_pod_records_total", {"reason": "allocation"}
    )
    assert count == 1
    evil["metadata"]["annotations"] = {AWS_NEURON_IDS: "0-10000000"}  # another bad record
    api.put_pod(evil, "MODIFIED")
    wait_until(lambda: len(warnings) == 2, 5, "the new record reported")


def test_other_pods_are_admitted_on_their_plans_beside_unusable_records(
    api: FakeApi, node: Node
) -> None:
    # Failed on e7426af: the negative core made every preference without a plan raise
    # (INTERNAL), and the empty core list kept the pod view from ever listing.
    for n, notes in enumerate(HOSTILE.values()):
        api.put_pod(hostile(f"evil-{n}", notes))
    plugin, kubelet = node()
    put_planned(api, plugin, "planned", Resource.NEURONCORE, [6, 7])
    assert kubelet.admit("planned", [("m", NEURONCORE, 2)]) == {"m": "6,7"}
    put(api, plugin, make_pod("plain", NODE, [("m", NEURON, 1)]))
    got = cores(kubelet.admit("plain", [("m", NEURON, 1)])["m"])
    assert not set(got) & {6, 7}
