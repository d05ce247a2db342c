"""The device plugin's allocation metrics (docs/metrics.md): what each container holds, as the
kubelet's PodResources and the plugin's own Allocate answers tell, and the node's free, held
and unhealthy counts with its largest free runs, under the names the DRA driver uses too."""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Callable
from functools import partial
from pathlib import Path

from dp_harness import FakeKubelet, FakePodResources, wait_until
from neuron_k8s.allocationmetrics import NodeAllocations, families
from neuron_k8s.allocator import Resource
from neuron_k8s.deviceplugin.discovery_fake import FakeDiscovery
from neuron_k8s.deviceplugin.ledger import Served, Snapshot
from neuron_k8s.deviceplugin.metrics import Metrics
from neuron_k8s.deviceplugin.plugin import Plugin
from neuron_k8s.deviceplugin.state import PluginState
from neuron_k8s.dra.checkpoint import Checkpoint, Prepared, PreparedDevice
from neuron_k8s.dra.claimcache import ClaimCache
from neuron_k8s.dra.podclaims import node_allocations

NEURON, NEURONCORE = Resource.NEURON, Resource.NEURONCORE
NODE = "node-a"
TYPE = "trn1.32xlarge"  # 16 devices x 2 cores, aligned blocks of 1, 4, 8, 16
NODE_LABELS = {"node": NODE, "instance_type": TYPE, "path": "device-plugin"}


def plugin_state() -> tuple[PluginState, Metrics]:
    metrics = Metrics()
    inventory = FakeDiscovery.for_instance_type(TYPE, 2).discover()
    state = PluginState(inventory, metrics, withhold_in_use=False)
    metrics.track_allocations(partial(state.allocations, NODE))
    return state, metrics


def listing(
    entries: dict[tuple[str, str, str], dict[Resource, tuple[int, ...]]], taken: float = 10.0
) -> Snapshot:
    pods = frozenset((ns, pod) for ns, pod, _ in entries)
    return Snapshot(entries, pods, taken)


def container(metrics: Metrics, name: str, ns: str, pod: str, c: str) -> float | None:
    labels = {"namespace": ns, "pod": pod, "container": c, "node": NODE, "path": "device-plugin"}
    return metrics.registry.get_sample_value(name, labels)


def node(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, {**NODE_LABELS, **labels})


def test_each_listed_container_reports_its_cores_and_the_devices_they_lie_on() -> None:
    state, metrics = plugin_state()
    state.ledger.take(
        listing(
            {
                ("team", "train", "main"): {NEURON: (4, 5, 6, 7)},
                ("team", "infer", "main"): {NEURONCORE: (1,)},
            }
        )
    )
    assert container(metrics, "neuron_container_cores", "team", "train", "main") == 8
    assert container(metrics, "neuron_container_devices", "team", "train", "main") == 4
    assert container(metrics, "neuron_container_cores", "team", "infer", "main") == 1
    assert container(metrics, "neuron_container_devices", "team", "infer", "main") == 1


def test_the_node_counts_held_free_and_unhealthy_cores_and_devices() -> None:
    state, metrics = plugin_state()
    state.ledger.take(listing({("team", "train", "main"): {NEURON: (4, 5, 6, 7)}}))
    state.set_unhealthy(frozenset({0, 5}))  # device 5 is held: it stays counted held
    assert node(metrics, "neuron_node_cores", state="held") == 8
    assert node(metrics, "neuron_node_cores", state="unhealthy") == 2
    assert node(metrics, "neuron_node_cores", state="free") == 32 - 10
    assert node(metrics, "neuron_node_devices", state="held") == 4
    assert node(metrics, "neuron_node_devices", state="unhealthy") == 1
    assert node(metrics, "neuron_node_devices", state="free") == 11


def test_the_largest_free_runs_follow_the_aligned_blocks() -> None:
    state, metrics = plugin_state()
    state.ledger.take(listing({("team", "infer", "main"): {NEURONCORE: (9,)}}))
    # Core 9 is on device 4: the block 0-7 is broken, 8-15 stays whole.
    assert node(metrics, "neuron_node_largest_free_run", unit="device") == 8
    assert node(metrics, "neuron_node_largest_free_run", unit="core") == 32 - 10
    assert node(metrics, "neuron_node_free_device_sets", devices="8") == 1
    assert node(metrics, "neuron_node_free_device_sets", devices="4") == 3
    assert node(metrics, "neuron_node_free_device_sets", devices="16") == 0


def test_an_allocate_answer_not_yet_listed_counts_for_the_container_it_was_for() -> None:
    state, metrics = plugin_state()
    state.ledger.take(listing({}, taken=1.0))
    state.ledger.serve(Served(NEURON, (2,), 5.0, "uid-1", "team/new", "main"))
    assert container(metrics, "neuron_container_cores", "team", "new", "main") == 2
    assert node(metrics, "neuron_node_cores", state="held") == 2


def test_a_container_holding_through_both_resources_is_one_series() -> None:
    state, metrics = plugin_state()
    state.ledger.take(listing({("team", "both", "main"): {NEURON: (0,), NEURONCORE: (2,)}}))
    assert container(metrics, "neuron_container_cores", "team", "both", "main") == 3
    assert container(metrics, "neuron_container_devices", "team", "both", "main") == 2


def test_a_finished_pod_has_no_series_and_frees_its_cores() -> None:
    state, metrics = plugin_state()
    state.ledger.take(listing({("team", "done", "main"): {NEURON: (3,)}}))
    state.ledger.finish_pod("team", "done", "uid-done")
    assert container(metrics, "neuron_container_cores", "team", "done", "main") is None
    assert node(metrics, "neuron_node_cores", state="held") == 0


def test_refusals_are_reported_as_zero_before_any() -> None:
    _, metrics = plugin_state()
    labels = {"resource": "aws.amazon.com/neuron", "reason": "in_use"}
    value = metrics.registry.get_sample_value(
        "neuron_device_plugin_allocation_refusals_total", labels
    )
    assert value == 0


def test_the_running_plugin_serves_the_kubelets_assignments_on_metrics(
    kubelet: FakeKubelet, start_plugin: Callable[..., Plugin], short_dir: str
) -> None:
    sock = os.path.join(short_dir, "pr.sock")
    pr = FakePodResources(sock).start()
    try:
        pr.assigned[("team", "train", "main")] = {NEURON.value: ["8", "9", "10", "11"]}
        plugin = start_plugin(
            fake_instance_type=TYPE, pod_resources_socket=sock, node_name=NODE, http_port=0
        )
        assert plugin.http is not None
        base = f"http://127.0.0.1:{plugin.http.port}"
        want = (
            'neuron_container_cores{container="main",namespace="team",node="node-a",'
            'path="device-plugin",pod="train"} 8.0'
        )

        def scraped() -> bool:
            return want in urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode()

        wait_until(scraped, 5, "the listed container on /metrics")
    finally:
        pr.stop()


def test_both_paths_export_the_same_names_and_labels(tmp_path: Path) -> None:
    state, _ = plugin_state()
    state.ledger.take(listing({("team", "train", "main"): {NEURON: (0,)}}))
    checkpoint = Checkpoint(str(tmp_path / "checkpoint.json"))
    checkpoint.put(
        "uid-c", Prepared("team", "c", NODE, (PreparedDevice("r", "neurondevice0", ()),))
    )
    claims = ClaimCache()
    claims.replace([{"metadata": {"uid": "uid-c", "name": "c", "namespace": "team"}}])
    dra = node_allocations(NODE, state.shape, checkpoint, claims, dict, frozenset)

    def described(view: NodeAllocations) -> list[tuple[str, str, list[str]]]:
        return [(f.name, f.type, sorted(f.samples[0].labels)) for f in families(view)]

    assert described(state.allocations(NODE)) == described(dra)
