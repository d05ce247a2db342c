"""The hand-off from the extender to the kubelet, through the plugin (docs/architecture.md,
"Device plugin"): the kubelet admits pods the extender planned, in any order, and each
container gets exactly the IDs the kubelet assigned; the plugin steers the kubelet to the
plan of the pod it is admitting, and records on every pod what its containers hold.

The kubelet's side is dp_harness.Admission, which follows the device manager of Kubernetes
1.34; the API and PodResources are the stand-ins of dp_harness."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

import grpc
import pytest
from dp_harness import (
    NEURON,
    NEURONCORE,
    Admission,
    FakeApi,
    FakeKubelet,
    allocate,
    make_pod,
    preferred,
    wait_until,
)
from neuron_k8s.allocator import Resource
from neuron_k8s.deviceplugin.plugin import Plugin
from neuron_k8s.pods import ALLOCATION, AWS_NEURON_IDS, NEURON_ALLOCATED
from planned_pods import NODE, cores, marked, plan, put, put_planned, recorded, recorded_count


def test_pods_admitted_in_another_order_than_bound_each_get_their_own_plan(
    api: FakeApi, node: Callable[..., tuple[Plugin, Admission]]
) -> None:
    # Failed on main before the redesign: the kubelet admitting b first gave b a's plan.
    plugin, kubelet = node()
    put_planned(api, plugin, "a", Resource.NEURONCORE, [4, 5], at=100)
    put_planned(api, plugin, "b", Resource.NEURONCORE, [6, 7], at=200)
    assert kubelet.admit("b", [("m", NEURONCORE, 2)]) == {"m": "6,7"}
    assert kubelet.admit("a", [("m", NEURONCORE, 2)]) == {"m": "4,5"}
    wait_until(lambda: marked(api, "a") and marked(api, "b"), 5, "both recorded")
    assert recorded(api, "a") == {"m": [4, 5]} and recorded(api, "b") == {"m": [6, 7]}
    assert recorded_count(plugin, "corrected") == 0


def test_a_kubelet_that_ignores_the_preference_is_served_its_own_ids_and_the_record_follows(
    api: FakeApi, node: Callable[..., tuple[Plugin, Admission]]
) -> None:
    # Failed on main before the redesign: Allocate handed out the plan, not the kubelet's IDs.
    plugin, kubelet = node()
    put_planned(api, plugin, "p", Resource.NEURONCORE, [8, 9])
    assert kubelet.admit("p", [("m", NEURONCORE, 2)], follow=False) == {"m": "0,1"}
    wait_until(lambda: recorded(api, "p") == {"m": [0, 1]} and marked(api, "p"), 5, "record")
    assert api.pod("default", "p")["metadata"]["annotations"][AWS_NEURON_IDS] == "0,1"


def test_a_planned_set_on_a_device_gone_unhealthy_is_never_served(
    api: FakeApi,
    kubelet: FakeKubelet,
    node: Callable[..., tuple[Plugin, Admission]],
    short_dir: str,
) -> None:
    # Failed on main before the redesign: with device 2 unhealthy and the kubelet's IDs 6,7,
    # Allocate handed out the plan, cores 4,5 on device 2.
    health = os.path.join(short_dir, "health")
    plugin, admission = node(fake_health_file=health)
    put_planned(api, plugin, "p", Resource.NEURONCORE, [4, 5])
    with open(health, "w") as f:
        f.write("2\n")
    wait_until(lambda: kubelet.unhealthy(NEURONCORE) == {"4", "5"}, 5, "cores 4,5 unhealthy")
    got = admission.admit("p", [("m", NEURONCORE, 2)])
    assert not set(cores(got["m"])) & {4, 5}
    wait_until(lambda: marked(api, "p"), 5, "record")
    assert not set(recorded(api, "p")["m"]) & {4, 5}


def test_ids_on_an_unhealthy_device_are_refused_naming_it(
    kubelet: FakeKubelet, node: Callable[..., tuple[Plugin, Admission]], short_dir: str
) -> None:
    health = os.path.join(short_dir, "health")
    plugin, _ = node(fake_health_file=health)
    with open(health, "w") as f:
        f.write("2\n")
    wait_until(lambda: plugin.state is not None and plugin.state.unhealthy, 5, "health read")
    with pytest.raises(grpc.RpcError) as err:
        allocate(kubelet.stub(NEURONCORE), ["4", "5"])
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "Neuron device 2 is unhealthy" in (err.value.details() or "")


def test_a_mixed_burst_on_one_node_is_admitted_whole_and_shares_no_core(
    api: FakeApi, node: Callable[..., tuple[Plugin, Admission]]
) -> None:
    # The extender's plans for pods of both resources bound in the same second; the kubelet
    # admits them in another order. Nothing is withheld, so its counts are never short.
    plugin, kubelet = node()
    pods = {
        "d1": ([("m", NEURON, 1)], plan(("m", Resource.NEURON, [0]), at=1)),
        "c2": ([("m", NEURONCORE, 2)], plan(("m", Resource.NEURONCORE, [2, 3]), at=2)),
        "d2": ([("m", NEURON, 2)], plan(("m", Resource.NEURON, [2, 3]), at=3)),
        "c1": ([("m", NEURONCORE, 1)], plan(("m", Resource.NEURONCORE, [8]), at=4)),
        "c1b": ([("m", NEURONCORE, 1)], plan(("m", Resource.NEURONCORE, [9]), at=5)),
        "c2b": ([("m", NEURONCORE, 2)], plan(("m", Resource.NEURONCORE, [10, 11]), at=6)),
    }
    for name, (containers, notes) in pods.items():
        put(api, plugin, make_pod(name, NODE, containers, notes))
    got = {}
    for name in ("c1b", "d2", "c2b", "d1", "c1", "c2"):
        got[name] = cores(kubelet.admit(name, pods[name][0])["m"])
    assert got == {
        "d1": [0, 1],
        "c2": [2, 3],
        "d2": [4, 5, 6, 7],
        "c1": [8],
        "c1b": [9],
        "c2b": [10, 11],
    }
    wait_until(lambda: all(marked(api, n) for n in pods), 5, "all recorded")


def test_an_init_containers_ids_are_reused_by_the_app_container_and_both_are_recorded(
    api: FakeApi, node: Callable[..., tuple[Plugin, Admission]]
) -> None:
    plugin, kubelet = node()
    notes = plan(("init", Resource.NEURONCORE, [6, 7]), ("m", Resource.NEURONCORE, [6, 7]))
    put(
        api,
        plugin,
        make_pod("p", NODE, [("m", NEURONCORE, 2)], notes, init=[("init", NEURONCORE, 2)]),
    )
    got = kubelet.admit("p", [("init", NEURONCORE, 2, "init"), ("m", NEURONCORE, 2)])
    assert got == {"init": "6,7", "m": "6,7"}
    wait_until(lambda: marked(api, "p"), 5, "recorded")
    assert recorded(api, "p") == {"init": [6, 7], "m": [6, 7]}


def test_a_sidecar_keeps_its_ids_beside_the_app_containers(
    api: FakeApi, node: Callable[..., tuple[Plugin, Admission]]
) -> None:
    plugin, kubelet = node()
    notes = plan(("side", Resource.NEURON, [5]), ("m", Resource.NEURONCORE, [0, 1]))
    pod = make_pod(
        "p", NODE, [("m", NEURONCORE, 2)], notes, init=[("side", NEURON, 1)], sidecars=("side",)
    )
    put(api, plugin, pod)
    got = kubelet.admit("p", [("side", NEURON, 1, "sidecar"), ("m", NEURONCORE, 2)])
    assert got == {"side": "10,11", "m": "0,1"}
    wait_until(lambda: marked(api, "p"), 5, "recorded")


def test_a_slow_api_server_does_not_slow_the_kubelets_calls(
    api: FakeApi, node: Callable[..., tuple[Plugin, Admission]]
) -> None:
    # Failed on main before the redesign: a pod the watch had not shown made every call list
    # the node's pods from the API, here 3 s each.
    plugin, kubelet = node()
    put_planned(api, plugin, "p", Resource.NEURON, [3])
    api.delay = 3.0
    start = time.monotonic()
    kubelet.admit("q", [("m", NEURON, 1)])  # a pod the API never showed the plugin
    kubelet.admit("p", [("m", NEURON, 1)])
    assert time.monotonic() - start < 2 * plugin.config.wait_for_pod + 1.0
    assert not [r for r in api.requests if r[0] == "GET" and "watch=true" not in r[1]][1:]


def test_the_pod_being_admitted_is_waited_for_on_the_watch_not_listed_from_the_api(
    api: FakeApi, node: Callable[..., tuple[Plugin, Admission]]
) -> None:
    _, kubelet = node(wait_for_pod=5.0)
    lists = len([r for r in api.requests if r[0] == "GET"])
    pod = make_pod("late", NODE, [("m", NEURONCORE, 2)], plan(("m", Resource.NEURONCORE, [10, 11])))
    threading.Timer(0.3, api.put_pod, args=(pod,)).start()  # the watch delivers it late
    assert kubelet.admit("late", [("m", NEURONCORE, 2)]) == {"m": "10,11"}
    assert len([r for r in api.requests if r[0] == "GET"]) == lists


def test_a_pod_placed_by_another_scheduler_is_recorded_so_the_extender_counts_it(
    api: FakeApi, node: Callable[..., tuple[Plugin, Admission]]
) -> None:
    plugin, kubelet = node()
    put(api, plugin, make_pod("plain", NODE, [("m", NEURON, 1)]))
    got = kubelet.admit("plain", [("m", NEURON, 1)])
    wait_until(lambda: marked(api, "plain"), 5, "recorded")
    assert recorded(api, "plain") == {"m": cores(got["m"])}
    notes = api.pod("default", "plain")["metadata"]["annotations"]
    assert int(notes["NEURON_ALLOC_TIME"]) > 0


def test_records_are_single_key_merge_patches_with_the_pods_uid(
    api: FakeApi, node: Callable[..., tuple[Plugin, Admission]]
) -> None:
    plugin, kubelet = node()
    notes = plan(("m", Resource.NEURONCORE, [8, 9]))
    put(api, plugin, make_pod("p", NODE, [("m", NEURONCORE, 2)], {**notes, "x": "kept"}))
    kubelet.admit("p", [("m", NEURONCORE, 2)], follow=False)
    wait_until(lambda: marked(api, "p"), 5, "recorded")
    (patch,) = [b for p, _, b in api.patches if p.endswith("/pods/p")]
    assert patch["metadata"]["uid"] == "uid-default-p"
    assert set(patch["metadata"]["annotations"]) == {ALLOCATION, AWS_NEURON_IDS, NEURON_ALLOCATED}
    assert {c for p, c, _ in api.patches if "/pods/" in p} == {"application/merge-patch+json"}
    annotations = api.pod("default", "p")["metadata"]["annotations"]
    assert annotations["x"] == "kept" and annotations["NEURON_ALLOC_TIME"] == "1"


def test_a_correction_that_would_claim_cores_twice_waits_for_the_other_record(
    api: FakeApi, node: Callable[..., tuple[Plugin, Admission]]
) -> None:
    plugin, kubelet = node()
    put_planned(api, plugin, "a", Resource.NEURONCORE, [2, 3])
    put_planned(api, plugin, "w", Resource.NEURONCORE, [0, 1])
    # The kubelet gives a the cores w's record claims: recording that now would hide them.
    kubelet.admit("a", [("m", NEURONCORE, 2)], follow=False)
    wait_until(lambda: recorded_count(plugin, "deferred"), 5, "deferred")
    assert not marked(api, "a")
    assert recorded(api, "a") == {"m": [2, 3]}
    # w's plan is taken: it gets a set no record claims, and then both records can move.
    got = cores(kubelet.admit("w", [("m", NEURONCORE, 2)])["m"])
    assert not set(got) & {0, 1, 2, 3}
    wait_until(lambda: marked(api, "a") and marked(api, "w"), 5, "both recorded")
    assert recorded(api, "a") == {"m": [0, 1]} and recorded(api, "w") == {"m": got}


def test_cores_held_through_the_other_resource_are_steered_around(
    kubelet: FakeKubelet, node: Callable[..., tuple[Plugin, Admission]]
) -> None:
    _, admission = node()
    admission.admit("whole", [("m", NEURON, 1)])  # device 0: cores 0,1
    offered = [str(i) for i in range(12)]
    assert preferred(kubelet.stub(NEURONCORE), offered, 2) not in (["0", "1"], ["1", "2"])
