"""bench_scale.py's DRA outcome check (plugin-src/bench/scale_dra_outcome.py), read from the
claims' allocation results: it passes disjoint allocations of what each template asked and
fails on each way an allocation can be wrong, across whole devices, core sets and device sets."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "plugin-src" / "bench"))
from scale_dra_outcome import CORE, DEVICE, dra_problems

NODES = {"inf2": "inf2.48xlarge", "trn1": "trn1.32xlarge"}
KINDS = {
    "device-1": (DEVICE, 1),
    "devices-4-connected": (DEVICE, 4),
    "cores-2": (CORE, 2),
    "cores-1": (CORE, 1),
}


def pod(name, node, template, claim=None):
    status = {"resourceClaimStatuses": [{"name": "neuron", "resourceClaimName": claim}]}
    return {
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "resourceClaims": [{"name": "neuron", "resourceClaimTemplateName": template}],
        },
        "status": status if claim else {},
    }


def claim(name, pool, *devices, driver="neuron.aws.com"):
    results = [{"request": "r", "driver": driver, "pool": pool, "device": d} for d in devices]
    status = {"allocation": {"devices": {"results": results}}} if devices else {}
    return {"metadata": {"name": name}, "status": status}


def check(pairs):
    """(pods, claims) from (pod, claim) pairs: each pod bound with its claim."""
    return dra_problems(NODES, KINDS, [p for p, _ in pairs], [c for _, c in pairs])


def bound(name, node, template, *devices, pool=None):
    return pod(name, node, template, f"{name}-c"), claim(f"{name}-c", pool or node, *devices)


def test_disjoint_allocations_of_what_was_asked_pass():
    pairs = [
        bound("a", "inf2", "device-1", "neurondevice0"),
        bound("b", "inf2", "cores-2", "neuroncores2-3"),
        bound("c", "inf2", "cores-1", "neuroncores4-4"),
        bound("d", "trn1", "devices-4-connected", *[f"neurondevice{i}" for i in range(4, 8)]),
        bound("e", "trn1", "cores-2", "neuroncores0-1"),
    ]
    assert check(pairs) == (5, [])


def test_a_core_set_on_a_held_whole_device_fails():
    pairs = [
        bound("a", "inf2", "device-1", "neurondevice1"),
        bound("b", "inf2", "cores-1", "neuroncores3-3"),
    ]
    checked, wrong = check(pairs)
    assert checked == 2
    assert wrong == ["core 3 on inf2 is held by a-c/neurondevice1 and b-c/neuroncores3-3"]


def test_a_device_set_overlapping_a_core_set_fails():
    pairs = [bound("a", "inf2", "cores-2", "neuroncores4-5")]
    extra = claim("other", "inf2", "neurondevices2-3")  # an allocated claim of no bound pod
    _, wrong = dra_problems(NODES, KINDS, [pairs[0][0]], [pairs[0][1], extra])
    assert any("held by" in w and "neurondevices2-3" in w for w in wrong)


def test_the_same_core_on_two_nodes_is_no_overlap():
    pairs = [
        bound("a", "inf2", "cores-2", "neuroncores0-1"),
        bound("b", "trn1", "cores-2", "neuroncores0-1"),
    ]
    assert check(pairs) == (2, [])


def test_connected_devices_outside_one_aligned_block_fail():
    pairs = [bound("a", "trn1", "devices-4-connected", *[f"neurondevice{i}" for i in range(2, 6)])]
    _, wrong = check(pairs)
    assert len(wrong) == 1 and "no connected set of 4" in wrong[0]


def test_fewer_devices_than_asked_fail():
    pairs = [bound("a", "trn1", "devices-4-connected", "neurondevice0", "neurondevice1")]
    _, wrong = check(pairs)
    assert wrong == ["a: asked for 4 whole devices, got ['neurondevice0', 'neurondevice1']"]


def test_a_core_set_of_the_wrong_size_fails():
    _, wrong = check([bound("a", "inf2", "cores-2", "neuroncores0-3")])
    assert wrong == ["a: asked for one set of 2 cores, got ['neuroncores0-3']"]


def test_a_whole_device_for_a_core_set_claim_fails():
    _, wrong = check([bound("a", "inf2", "cores-2", "neurondevice0")])
    assert wrong == ["a: asked for one set of 2 cores, got ['neurondevice0']"]


def test_a_bound_pod_whose_claim_is_not_allocated_fails():
    pairs = [(pod("a", "inf2", "device-1", "a-c"), claim("a-c", "inf2"))]
    assert check(pairs) == (1, ["a: bound to inf2 with no allocated claim"])


def test_a_bound_pod_with_no_claim_status_fails():
    assert check([(pod("a", "inf2", "device-1"), claim("x", "inf2"))])[1] == [
        "a: bound to inf2 with no allocated claim"
    ]


def test_devices_from_another_nodes_pool_fail():
    _, wrong = check([bound("a", "inf2", "device-1", "neurondevice0", pool="trn1")])
    assert wrong == ["a: bound to inf2 but its claim's devices are on trn1"]


def test_a_device_beyond_the_node_fails():
    _, wrong = check([bound("a", "inf2", "device-1", "neurondevice12")])
    assert any("beyond the node's 12 devices" in w for w in wrong)


def test_a_device_of_another_driver_fails():
    pairs = [(pod("a", "inf2", "device-1", "a-c"), claim("a-c", "inf2", "gpu0", driver="gpu.x"))]
    _, wrong = check(pairs)
    assert "claim a-c: device gpu0 of driver gpu.x" in wrong


def test_a_pod_not_bound_yet_is_not_checked():
    waiting = pod("a", None, "device-1")
    assert dra_problems(NODES, KINDS, [waiting], []) == (0, [])
