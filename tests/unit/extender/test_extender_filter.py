"""POST /filter as kube-scheduler sends it, against the real server and a fake API."""

from __future__ import annotations

import threading

from extender_helpers import (
    CORE,
    NEURON,
    binding_args,
    filter_args,
    filter_args_nodes,
    make_node,
    make_pod,
    running_pod,
    wait_for,
)


def test_filter_passes_node_with_free_contiguous_cores(cluster, start_extender):
    cluster.put("nodes", make_node("inf2-a", "inf2.48xlarge"))
    ext = start_extender()
    resp = ext.post("filter", filter_args(make_pod("p"), ["inf2-a"]))
    assert resp.status == 200
    body = resp.json()
    assert body["NodeNames"] == ["inf2-a"]
    assert body["FailedNodes"] == {}
    assert body["FailedAndUnresolvableNodes"] == {}
    assert body["Error"] == ""
    assert body["Nodes"] is None


def test_filter_explains_seven_devices_on_trn1_32xlarge(cluster, start_extender):
    cluster.put("nodes", make_node("trn1-a", "trn1.32xlarge"))
    ext = start_extender()
    pod = make_pod("big", [("main", {NEURON: "7"})])
    body = ext.post("filter", filter_args(pod, ["trn1-a"])).json()
    assert body["NodeNames"] == []
    reason = body["FailedAndUnresolvableNodes"]["trn1-a"]
    assert "Instance type trn1.32xlarge does not support requests for device: 7" in reason


def test_filter_keeps_the_torus_rule_on_a_trn1_advertising_15_devices(cluster, start_extender):
    cluster.put("nodes", make_node("trn1-a", "trn1.32xlarge", devices=15, cores=30))
    ext = start_extender()
    two = ext.post("filter", filter_args(make_pod("two", [("m", {NEURON: "2"})]), ["trn1-a"]))
    reason = two.json()["FailedAndUnresolvableNodes"]["trn1-a"]
    assert "does not support requests for device: 2" in reason
    four = ext.post("filter", filter_args(make_pod("four", [("m", {NEURON: "4"})]), ["trn1-a"]))
    assert four.json()["NodeNames"] == ["trn1-a"]


def test_filter_fails_node_without_neuron_capacity(cluster, start_extender):
    cluster.put("nodes", make_node("cpu-a", "m5.large"))
    ext = start_extender()
    body = ext.post("filter", filter_args(make_pod("p"), ["cpu-a"])).json()
    assert body["NodeNames"] == []
    assert "no Neuron capacity on this node" in body["FailedAndUnresolvableNodes"]["cpu-a"]


def test_filter_fails_unknown_node_without_error(cluster, start_extender):
    cluster.put("nodes", make_node("inf2-a"))
    ext = start_extender()
    body = ext.post("filter", filter_args(make_pod("p"), ["inf2-a", "ghost"])).json()
    assert body["Error"] == ""
    assert body["NodeNames"] == ["inf2-a"]
    assert "unknown to the Neuron extender" in body["FailedAndUnresolvableNodes"]["ghost"]


def test_filter_counts_cores_held_by_pods_on_the_node(cluster, start_extender):
    cluster.put("nodes", make_node("inf2-small", "inf2.24xlarge"))  # 12 cores
    cluster.put("pods", running_pod("holder", "inf2-small", list(range(8))))
    ext = start_extender()
    fits = ext.post("filter", filter_args(make_pod("p4", [("m", {CORE: "4"})]), ["inf2-small"]))
    too_big = ext.post("filter", filter_args(make_pod("p6", [("m", {CORE: "6"})]), ["inf2-small"]))
    assert fits.json()["NodeNames"] == ["inf2-small"]
    body = too_big.json()
    assert body["NodeNames"] == []
    # Resolvable by preemption, so in FailedNodes, worded per instance type (groups well).
    assert body["FailedNodes"]["inf2-small"] == (
        "no free contiguous set of 6 NeuronCores on inf2.24xlarge"
    )


def test_filter_refuses_whole_device_when_one_of_its_cores_is_taken(cluster, start_extender):
    cluster.put("nodes", make_node("inf2-one", "inf2.xlarge"))  # 1 device, 2 cores
    cluster.put("pods", running_pod("core-user", "inf2-one", [1]))
    ext = start_extender()
    body = ext.post("filter", filter_args(make_pod("dev", [("m", {NEURON: "1"})]), ["inf2-one"]))
    assert body.json()["NodeNames"] == []


def test_filter_refuses_cores_on_a_device_taken_whole(cluster, start_extender):
    cluster.put("nodes", make_node("inf2-one", "inf2.xlarge"))
    cluster.put("pods", running_pod("dev-user", "inf2-one", [0, 1], resource=NEURON))
    ext = start_extender()
    body = ext.post("filter", filter_args(make_pod("c", [("m", {CORE: "1"})]), ["inf2-one"]))
    assert body.json()["NodeNames"] == []


def test_filter_avoids_unhealthy_devices_from_node_annotation(cluster, start_extender):
    # inf2.24xlarge: 6 devices in a ring without wrap-around; device 3 unhealthy leaves runs
    # of 3 and 2, so 4 contiguous devices cannot be had.
    cluster.put("nodes", make_node("inf2-sick", "inf2.24xlarge", unhealthy="3"))
    ext = start_extender()
    four = ext.post("filter", filter_args(make_pod("p", [("m", {NEURON: "4"})]), ["inf2-sick"]))
    three = ext.post("filter", filter_args(make_pod("q", [("m", {NEURON: "3"})]), ["inf2-sick"]))
    reason = four.json()["FailedAndUnresolvableNodes"]["inf2-sick"]
    assert "1 of 6 Neuron devices of this inf2.24xlarge are unhealthy" in reason
    assert three.json()["NodeNames"] == ["inf2-sick"]


def test_filter_needs_room_for_every_container(cluster, start_extender):
    cluster.put("nodes", make_node("inf2-small", "inf2.24xlarge"))  # 12 cores
    ext = start_extender()
    two = make_pod("two", [("a", {CORE: "8"}), ("b", {CORE: "4"})])
    three = make_pod("three", [("a", {CORE: "8"}), ("b", {CORE: "4"}), ("c", {CORE: "1"})])
    assert ext.post("filter", filter_args(two, ["inf2-small"])).json()["NodeNames"] == [
        "inf2-small"
    ]
    body = ext.post("filter", filter_args(three, ["inf2-small"])).json()
    assert body["NodeNames"] == []
    assert (
        "8 NeuronCores + 4 NeuronCores + 1 NeuronCore"
        in (body["FailedAndUnresolvableNodes"]["inf2-small"])
    )


def test_filter_passes_every_node_for_pod_without_neuron_requests(cluster, start_extender):
    cluster.put("nodes", make_node("cpu-a", "m5.large"))
    ext = start_extender()
    pod = make_pod("web", [("nginx", {})])
    body = ext.post("filter", filter_args(pod, ["cpu-a", "ghost"])).json()
    assert body["NodeNames"] == ["cpu-a", "ghost"]


def test_filter_fails_all_nodes_for_pod_asking_both_resources_in_one_container(
    cluster, start_extender
):
    cluster.put("nodes", make_node("inf2-a"))
    ext = start_extender()
    pod = make_pod("both", [("m", {CORE: "2", NEURON: "1"})])
    body = ext.post("filter", filter_args(pod, ["inf2-a"])).json()
    assert body["NodeNames"] == []
    assert "asks for both" in body["FailedAndUnresolvableNodes"]["inf2-a"]


def test_filter_with_full_node_list_answers_with_the_node_objects(cluster, start_extender):
    nodes = [make_node("inf2-a"), make_node("cpu-a", "m5.large")]
    for n in nodes:
        cluster.put("nodes", n)
    ext = start_extender()
    body = ext.post("filter", filter_args_nodes(make_pod("p"), nodes)).json()
    assert body["NodeNames"] is None
    assert [n["metadata"]["name"] for n in body["Nodes"]["items"]] == ["inf2-a"]
    # The objects are passed through unchanged, as kube-scheduler matches them by name.
    assert body["Nodes"]["items"][0] == nodes[0]
    assert "cpu-a" in body["FailedAndUnresolvableNodes"]


def test_filter_with_full_node_list_judges_node_not_yet_watched(start_extender):
    ext = start_extender()
    fresh = make_node("inf2-new", "inf2.48xlarge")
    body = ext.post("filter", filter_args_nodes(make_pod("p"), [fresh])).json()
    assert [n["metadata"]["name"] for n in body["Nodes"]["items"]] == ["inf2-new"]


def test_filter_accepts_keys_in_any_case_as_go_does(cluster, start_extender):
    cluster.put("nodes", make_node("inf2-a"))
    ext = start_extender()
    body = ext.post("filter", {"pod": make_pod("p"), "nodenames": ["inf2-a"]}).json()
    assert body["NodeNames"] == ["inf2-a"]


def test_filter_sees_node_added_after_start(cluster, start_extender):
    ext = start_extender()
    cluster.put("nodes", make_node("late", "inf2.xlarge"))
    wait_for(lambda: "late" in ext.extender.state.nodes, what="node watch")
    body = ext.post("filter", filter_args(make_pod("p"), ["late"])).json()
    assert body["NodeNames"] == ["late"]


def test_filter_sees_unhealthy_annotation_change(cluster, start_extender):
    cluster.put("nodes", make_node("inf2-one", "inf2.xlarge"))
    ext = start_extender()
    cluster.put("nodes", make_node("inf2-one", "inf2.xlarge", unhealthy="0"))
    wait_for(lambda: ext.extender.state.nodes["inf2-one"].unhealthy == 1, what="annotation")
    body = ext.post("filter", filter_args(make_pod("p"), ["inf2-one"])).json()
    assert body["NodeNames"] == []


def test_filter_counts_reservation_of_bind_in_flight(cluster, api, start_extender):
    cluster.put("nodes", make_node("inf2-one", "inf2.xlarge"))  # 2 cores
    ext = start_extender()
    first = make_pod("first", [("m", {CORE: "2"})])
    cluster.put("pods", first)
    api.delay("POST", 0.5)  # hold the bind between reservation and Binding
    t = threading.Thread(target=ext.post, args=("bind", binding_args(first, "inf2-one")))
    t.start()
    try:
        wait_for(lambda: ext.extender.state.reservations(), what="reservation")
        body = ext.post("filter", filter_args(make_pod("second"), ["inf2-one"])).json()
        assert body["NodeNames"] == []
    finally:
        t.join()


def test_unbound_pod_with_a_record_for_every_core_does_not_make_the_node_full(
    cluster, start_extender
):
    # Bind writes the record and spec.nodeName in one write: an unbound pod's record was
    # written by its owner (or a pod of another scheduler nobody runs), and holds nothing.
    cluster.put("nodes", make_node("inf2-one", "inf2.xlarge"))
    squatter = running_pod("squatter", "inf2-one", [0, 1], phase="Pending")
    del squatter["spec"]["nodeName"]
    cluster.put("pods", squatter)
    ext = start_extender()
    other = ext.post("filter", filter_args(make_pod("other"), ["inf2-one"])).json()
    assert other["NodeNames"] == ["inf2-one"]
    assert ext.extender.state.usage() == {}
