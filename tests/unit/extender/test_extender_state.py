"""The cluster view: derived from pods and nodes only, rebuilt after a restart, freed by
deletion and completion, kept through watch expiry."""

from __future__ import annotations

from extender_helpers import (
    CORE,
    binding_args,
    filter_args,
    make_node,
    make_pod,
    running_pod,
    wait_for,
)
from neuron_k8s.allocator import mask
from neuron_k8s.extender.records import pod_use, read_node
from neuron_k8s.extender.state import ClusterState
from neuron_k8s.topology import Rule


def _bind_all(ext, cluster, node, sizes):
    for i, n in enumerate(sizes):
        pod = make_pod(f"p{i}", [("m", {CORE: str(n)})])
        cluster.put("pods", pod)
        assert ext.post("bind", binding_args(pod, node)).json() == {"Error": ""}


def test_restarted_extender_sees_the_same_usage(cluster, start_extender):
    cluster.put("nodes", make_node("big", "inf2.48xlarge"))
    first = start_extender()
    _bind_all(first, cluster, "big", [2, 1, 4, 1])
    wait_for(lambda: not first.extender.state.reservations(), what="watch catches up")
    before = first.extender.state.usage()
    first.stop()
    second = start_extender()
    assert second.extender.state.usage() == before
    assert before["big"].bit_count() == 8


def test_restart_keeps_no_usage_on_nodes(cluster, api, start_extender):
    cluster.put("nodes", make_node("big", "inf2.48xlarge"))
    ext = start_extender()
    _bind_all(ext, cluster, "big", [2])
    node = cluster.get("nodes", "big")
    assert not any("USAGE" in k for k in node["metadata"]["annotations"])
    assert not [c for c in api.calls if "/nodes/" in c.path and c.method != "GET"]


def test_deleted_pod_frees_its_cores(cluster, start_extender):
    cluster.put("nodes", make_node("one", "inf2.xlarge"))
    cluster.put("pods", running_pod("holder", "one", [0, 1]))
    ext = start_extender()
    assert ext.post("filter", filter_args(make_pod("p"), ["one"])).json()["NodeNames"] == []
    cluster.delete("pods", "default/holder")
    wait_for(lambda: ext.extender.state.nodes["one"].used == 0, what="deletion seen")
    assert ext.post("filter", filter_args(make_pod("p"), ["one"])).json()["NodeNames"] == ["one"]


def test_finished_pod_frees_its_cores(cluster, start_extender):
    cluster.put("nodes", make_node("one", "inf2.xlarge"))
    cluster.put("pods", running_pod("job", "one", [0, 1]))
    ext = start_extender()
    cluster.set_phase("default/job", "Succeeded")
    wait_for(lambda: ext.extender.state.nodes["one"].used == 0, what="completion seen")


def test_failed_pod_frees_its_cores(cluster, start_extender):
    cluster.put("nodes", make_node("one", "inf2.xlarge"))
    cluster.put("pods", running_pod("job", "one", [0, 1]))
    ext = start_extender()
    cluster.set_phase("default/job", "Failed")
    wait_for(lambda: ext.extender.state.nodes["one"].used == 0, what="failure seen")


def test_finished_pods_hold_nothing_after_restart(cluster, start_extender):
    cluster.put("nodes", make_node("one", "inf2.xlarge"))
    cluster.put("pods", running_pod("done", "one", [0, 1], phase="Succeeded"))
    ext = start_extender()
    assert ext.extender.state.nodes["one"].used == 0


def test_terminating_pod_keeps_its_cores(cluster, start_extender):
    cluster.put("nodes", make_node("one", "inf2.xlarge"))
    pod = running_pod("stopping", "one", [0, 1])
    pod["metadata"]["deletionTimestamp"] = "2025-01-10T11:00:00Z"
    cluster.put("pods", pod)
    ext = start_extender()
    assert ext.extender.state.nodes["one"].used == 0b11


def test_pod_deleted_while_watch_was_expired_is_freed_by_relist(cluster, start_extender):
    cluster.put("nodes", make_node("one", "inf2.xlarge"))
    cluster.put("pods", running_pod("holder", "one", [0, 1]))
    ext = start_extender()
    with cluster.cond:  # delete without an event anyone can see, then expire the watch
        del cluster.objects["pods"]["default/holder"]
    cluster.compact()
    wait_for(lambda: ext.extender.state.nodes["one"].used == 0, what="re-list")


def test_node_deleted_becomes_unknown(cluster, start_extender):
    cluster.put("nodes", make_node("gone"))
    ext = start_extender()
    cluster.delete("nodes", "gone")
    wait_for(lambda: "gone" not in ext.extender.state.nodes, what="node deletion")
    body = ext.post("filter", filter_args(make_pod("p"), ["gone"])).json()
    assert "unknown" in body["FailedAndUnresolvableNodes"]["gone"]


def test_annotation_naming_another_node_than_the_binding_holds_nothing():
    pod = running_pod("moved", "node-a", [0, 1])
    pod["spec"]["nodeName"] = "node-b"
    assert pod_use(pod) is None


def test_unreadable_allocation_annotation_is_ignored_not_fatal():
    pod = running_pod("odd", "node-a", [0])
    pod["metadata"]["annotations"]["neuron.k8s.local/allocation"] = "{not json"
    state = ClusterState()
    state.replace_pods([pod])
    assert state.usage() == {}


def test_node_shape_comes_from_label_and_capacity():
    shape, problem, unhealthy = read_node(make_node("t", "trn1.32xlarge", unhealthy="2,5"))
    assert (shape.devices, shape.cores_per_device, shape.rule) == (16, 2, Rule.ALIGNED)
    assert problem is None
    assert unhealthy == mask([2, 5])


def test_node_with_capacity_but_unknown_type_is_a_ring():
    shape, _, _ = read_node(make_node("fake", "kind-worker", devices=4, cores=8))
    assert (shape.devices, shape.cores_per_device, shape.rule) == (4, 2, Rule.RING)


def test_node_advertising_fewer_devices_than_its_type_keeps_the_torus_without_the_rest():
    # Review A7: a plugin that counts only the device nodes it found reports 15 on a trn1.32xlarge
    # whose /dev/neuron15 is missing; a 15-device ring would allow sets the torus forbids.
    shape, problem, unhealthy = read_node(make_node("t", "trn1.32xlarge", devices=15, cores=30))
    assert (shape.devices, shape.cores_per_device, shape.rule) == (16, 2, Rule.ALIGNED)
    assert problem is None
    assert unhealthy == mask([15])


def test_node_with_unreadable_unhealthy_annotation_counts_as_healthy():
    _, _, unhealthy = read_node(make_node("n", "inf2.xlarge", unhealthy="zero"))
    assert unhealthy == 0


def _supply_by_usage(state: ClusterState) -> dict[int, int]:
    supply = state.supply()
    return {supply.classes.key(cls)[1].bit_count(): n for cls, n in supply.counts.items()}


def test_supply_counts_neuron_nodes_by_class_and_follows_usage():
    state = ClusterState()
    state.replace_nodes(
        [make_node("a", "inf2.xlarge"), make_node("b", "inf2.xlarge"), make_node("cpu", "m5.large")]
    )
    assert _supply_by_usage(state) == {0: 2}  # the CPU node has no Neuron shape
    state.replace_pods([running_pod("p", "a", [0])])
    assert _supply_by_usage(state) == {0: 1, 1: 1}


def _reserved(state: ClusterState, pod: dict) -> object:
    from neuron_k8s.pods import container_requests

    uid = pod["metadata"]["uid"]
    return state.reserve(uid, "default/" + pod["metadata"]["name"], "one", container_requests(pod))


def _state_with_node() -> ClusterState:
    state = ClusterState()
    state.replace_nodes([make_node("one", "inf2.xlarge")])
    state.replace_pods([])
    return state


def test_confirm_drops_the_reservation_of_a_pod_deleted_before_it():
    state = _state_with_node()
    pod = make_pod("p")
    r = _reserved(state, pod)
    bound = running_pod("p", "one", [0, 1])  # what the watch shows: bound, then deleted
    state.apply_pod("MODIFIED", bound)
    state.apply_pod("DELETED", bound)
    state.confirm(r)
    assert state.reservations() == {}
    assert state.usage() == {}


def test_confirm_drops_the_reservation_of_a_pod_that_finished_before_it():
    state = _state_with_node()
    r = _reserved(state, make_pod("p"))
    state.apply_pod("MODIFIED", running_pod("p", "one", [0, 1], phase="Failed"))
    state.confirm(r)
    assert state.reservations() == {}
    assert state.usage() == {}


def test_cores_stay_held_from_reserve_until_the_bound_pod_counts():
    state = _state_with_node()
    pod = make_pod("p")
    r = _reserved(state, pod)
    assert state.nodes["one"].used == 0b11
    state.apply_pod("MODIFIED", pod)  # the watch still shows it unbound
    assert state.nodes["one"].used == 0b11
    state.confirm(r)
    assert state.nodes["one"].used == 0b11
    state.apply_pod("MODIFIED", running_pod("p", "one", [0, 1], phase="Pending"))
    assert state.nodes["one"].used == 0b11
    assert state.reservations() == {}  # the pod's own record holds them now
