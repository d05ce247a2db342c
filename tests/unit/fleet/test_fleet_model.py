"""The node views: shapes, paths, holdings, health and room, read from plain API objects."""

from fleetdata import (
    claim,
    claim_pod,
    dp_node,
    dra_node,
    garbage_pod,
    plain_node,
    recorded_pod,
    slices,
)
from neuron_k8s.fleet.model import node_views

NEURON, CORE = "aws.amazon.com/neuron", "aws.amazon.com/neuroncore"


def view(nodes, pods=(), claims=(), slices_=()):
    return {v.name: v for v in node_views(nodes, pods, claims, slices_)}


def test_a_device_plugin_node_has_its_instance_types_shape_and_path() -> None:
    v = view([dp_node("a", "trn1.32xlarge")])["a"]
    assert (v.path, v.instance_type, v.shape.devices, v.shape.cores_per_device) == (
        "device-plugin",
        "trn1.32xlarge",
        16,
        2,
    )


def test_a_node_without_neuron_capacity_is_not_a_neuron_node() -> None:
    assert view([plain_node("cpu"), dp_node("a", "inf2.xlarge")]).keys() == {"a"}


def test_a_node_with_our_drivers_slices_is_a_dra_node_shaped_by_them() -> None:
    v = view([dra_node("d", "trn1.32xlarge")], slices_=slices("d", "trn1.32xlarge"))["d"]
    assert (v.path, v.shape.cores, v.unhealthy) == ("dra", 32, {})


def test_a_dra_labelled_node_without_slices_says_so() -> None:
    v = view([dra_node("d", "inf2.48xlarge")])["d"]
    assert v.path == "dra" and "no ResourceSlices of neuron.aws.com" in v.notes[0]


def test_a_pods_record_gives_one_holding_per_container() -> None:
    p = recorded_pod("p", "a", "trn1.32xlarge", [("x", CORE, [0, 1, 2]), ("y", NEURON, [4, 5])])
    v = view([dp_node("a", "trn1.32xlarge")], [p])["a"]
    assert [(h.container, h.cores, h.devices) for h in v.holdings] == [
        ("x", (0, 1, 2), (0, 1)),
        ("y", (4, 5), (2,)),
    ]


def test_a_pod_with_a_garbage_record_is_unreadable_and_the_others_are_still_listed() -> None:
    good = recorded_pod("good", "a", "inf2.xlarge", [("c", CORE, [1])])
    v = view([dp_node("a", "inf2.xlarge")], [garbage_pod("bad", "a"), good])["a"]
    assert [h.pod for h in v.holdings] == ["good"]
    assert [(u.name, "not readable" in u.reason) for u in v.unreadable] == [("bad", True)]


def test_a_finished_pod_holds_nothing() -> None:
    done = recorded_pod("done", "a", "inf2.xlarge", [("c", CORE, [0])], phase="Succeeded")
    assert view([dp_node("a", "inf2.xlarge")], [done])["a"].holdings == []


def test_the_device_plugins_annotation_marks_devices_unhealthy() -> None:
    node = dp_node("a", "trn1.32xlarge")
    node["metadata"]["annotations"]["neuron.k8s.local/unhealthy-devices"] = "3,5"
    assert sorted(view([node])["a"].unhealthy) == [3, 5]


def test_capacity_below_the_instance_types_keeps_its_shape_with_the_rest_unhealthy() -> None:
    node = dp_node("a", "trn1.32xlarge")
    node["status"]["capacity"].update({NEURON: "15", CORE: "30"})
    v = view([node])["a"]
    assert (v.shape.devices, v.shape.rule.value) == (16, "aligned")
    assert v.unhealthy == {15: "beyond the 15 devices the node advertises"}


def test_allocatable_below_capacity_is_noted() -> None:
    node = dp_node("a", "inf2.48xlarge")
    node["status"]["allocatable"]["aws.amazon.com/neuron"] = "11"
    assert "allocatable aws.amazon.com/neuron 11 of 12" in view([node])["a"].notes


def test_the_neuronhealth_condition_is_noted_while_true() -> None:
    node = dp_node("a", "inf2.48xlarge")
    node["status"]["conditions"] = [
        {"type": "NeuronHealth", "status": "True", "reason": "NeuronHardwareError", "message": "m"}
    ]
    assert view([node])["a"].notes == ["NeuronHealth: NeuronHardwareError: m"]


def test_a_dra_core_set_claim_is_held_by_the_container_that_uses_it() -> None:
    c = claim("c1", "d", ["neuroncores2-5"], "p")
    v = view(
        [dra_node("d", "trn1.32xlarge")],
        [claim_pod("p", "d", "c1")],
        [c],
        slices("d", "trn1.32xlarge"),
    )["d"]
    assert [(h.pod, h.container, h.claim, h.cores, h.devices) for h in v.holdings] == [
        ("p", "app", "c1", (2, 3, 4, 5), (1, 2))
    ]


def test_a_claim_reserved_for_no_pod_is_held_by_the_claim() -> None:
    c = claim("c1", "d", ["neurondevice3"], None)
    v = view([dra_node("d", "inf2.48xlarge")], [], [c], slices("d", "inf2.48xlarge"))["d"]
    assert [(h.pod, h.claim, h.cores) for h in v.holdings] == [("", "c1", (6, 7))]


def test_a_claim_naming_a_device_the_node_has_not_is_unreadable() -> None:
    c = claim("c1", "d", ["neurondevice40"], "p")
    v = view([dra_node("d", "inf2.48xlarge")], [], [c], slices("d", "inf2.48xlarge"))["d"]
    assert v.holdings == [] and [u.name for u in v.unreadable] == ["claim c1"]


def test_a_dra_device_with_our_unhealthy_taint_is_unhealthy_with_its_reason() -> None:
    s = slices("d", "trn1.32xlarge", {5: "DeviceGone"})
    v = view([dra_node("d", "trn1.32xlarge")], slices_=s)["d"]
    assert list(v.unhealthy) == [5] and "DeviceGone" in v.unhealthy[5]


def test_a_dra_device_left_unpublished_is_unhealthy() -> None:
    s = slices("d", "inf2.48xlarge")
    for sl in s:
        devices = sl["spec"].get("devices") or []
        sl["spec"]["devices"] = [d for d in devices if d["name"] != "neurondevice7"]
    v = view([dra_node("d", "inf2.48xlarge")], slices_=s)["d"]
    assert v.unhealthy == {7: "not published by the DRA driver"}


def test_room_counts_free_aligned_blocks_per_allowed_size() -> None:
    p = recorded_pod("p", "a", "trn1.32xlarge", [("c", NEURON, [0, 1])])
    room = view([dp_node("a", "trn1.32xlarge")], [p])["a"].room
    assert dict(room.device_room) == {16: 0, 8: 1, 4: 3, 1: 15}
    assert room.largest_device_request == 8


def test_fragmentation_is_one_minus_the_largest_core_request_over_free_cores() -> None:
    # inf2.48xlarge: 24 cores; devices 1 and 3 held leave 0-1, 4-5 and 8-23 free.
    p = recorded_pod("p", "a", "inf2.48xlarge", [("x", NEURON, [2, 3]), ("y", NEURON, [6, 7])])
    room = view([dp_node("a", "inf2.48xlarge")], [p])["a"].room
    assert (room.free_cores, room.largest_core_request) == (20, 16)
    assert room.fragmentation == round(1 - 16 / 20, 3)


def test_unhealthy_devices_leave_no_free_cores() -> None:
    node = dp_node("a", "inf2.xlarge")
    node["metadata"]["annotations"]["neuron.k8s.local/unhealthy-devices"] = "0"
    room = view([node])["a"].room
    assert (room.free_cores, room.largest_core_request, room.fragmentation) == (0, 0, 0.0)


def test_two_pods_on_one_core_are_noted() -> None:
    a = recorded_pod("a1", "a", "inf2.xlarge", [("c", CORE, [0])])
    b = recorded_pod("b1", "a", "inf2.xlarge", [("c", CORE, [0])])
    assert view([dp_node("a", "inf2.xlarge")], [a, b])["a"].notes == [
        "core 0 is held by team/a1 and team/b1"
    ]


def test_objects_of_the_wrong_shape_are_passed_over_without_breaking_the_others() -> None:
    nodes = [
        dp_node("a", "inf2.xlarge"),
        {"metadata": "not an object"},
        {"metadata": {"name": "b"}, "status": {"capacity": {"aws.amazon.com/neuron": "lots"}}},
    ]
    bad_pod = {
        "metadata": {"name": "p", "annotations": {"neuron.k8s.local/allocation": "{}"}},
        "spec": {"nodeName": "a", "containers": "none"},
    }
    good = recorded_pod("good", "a", "inf2.xlarge", [("c", CORE, [0])])
    got = view(nodes, [{"spec": "x"}, bad_pod, good], [{"status": {"allocation": 3}}])
    assert list(got) == ["a"]
    assert [h.pod for h in got["a"].holdings] == ["good"]
    assert [u.name for u in got["a"].unreadable] == ["p"]
