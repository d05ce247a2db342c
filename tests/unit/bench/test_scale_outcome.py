"""bench_scale.py's outcome check (plugin-src/bench/scale_outcome.py): it passes what the
extender really records and fails on each way a record can be wrong."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "plugin-src" / "bench"))
from neuron_k8s.allocator import Placement, Resource
from neuron_k8s.pods import ContainerAllocation, allocation_annotations
from scale_outcome import problems

NODES = {"inf2": "inf2.48xlarge", "trn1": "trn1.32xlarge"}


def pod(name, node, resource, count, cores, devices=None, recorded_node=None):
    ids = devices if resource is Resource.NEURON else cores
    placement = Placement(
        resource, tuple(ids), tuple(cores), tuple(devices or sorted({c // 2 for c in cores}))
    )
    notes = allocation_annotations(recorded_node or node, [ContainerAllocation("c0", placement)], 1)
    return {
        "metadata": {"name": name, "annotations": notes},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "c0", "resources": {"limits": {resource.value: str(count)}}}],
        },
    }


def test_disjoint_valid_sets_pass():
    pods = [
        pod("a", "inf2", Resource.NEURONCORE, 2, [0, 1]),
        pod("b", "inf2", Resource.NEURONCORE, 2, [2, 3]),
        pod("c", "trn1", Resource.NEURON, 4, [0, 1, 2, 3, 4, 5, 6, 7], [0, 1, 2, 3]),
    ]
    assert problems(NODES, pods) == (3, [])


def test_a_planted_overlap_fails():
    pods = [
        pod("a", "inf2", Resource.NEURONCORE, 4, [0, 1, 2, 3]),
        pod("b", "inf2", Resource.NEURONCORE, 2, [2, 3]),
    ]
    assert problems(NODES, pods) == (2, ["b/c0: cores [2, 3] on inf2 are held twice"])


def test_the_same_cores_on_two_nodes_are_no_overlap():
    pods = [
        pod("a", "inf2", Resource.NEURONCORE, 2, [0, 1]),
        pod("b", "trn1", Resource.NEURONCORE, 2, [0, 1]),
    ]
    assert problems(NODES, pods) == (2, [])


def test_a_non_contiguous_set_fails():
    _, wrong = problems(NODES, [pod("a", "inf2", Resource.NEURONCORE, 2, [0, 2])])
    assert wrong and "no valid set" in wrong[0]


def test_an_unaligned_trn1_block_fails():
    cores = list(range(4, 12))  # devices 2-5: contiguous, but not an aligned block of four
    _, wrong = problems(NODES, [pod("a", "trn1", Resource.NEURON, 4, cores, [2, 3, 4, 5])])
    assert wrong and "no valid set" in wrong[0]


def test_a_set_of_the_wrong_size_fails():
    _, wrong = problems(NODES, [pod("a", "inf2", Resource.NEURONCORE, 4, [0, 1])])
    assert wrong and "no valid set" in wrong[0]


def test_a_bound_pod_without_a_record_fails():
    bare = pod("a", "inf2", Resource.NEURONCORE, 1, [0])
    bare["metadata"]["annotations"] = {}
    _, wrong = problems(NODES, [bare])
    assert wrong == ["a: bound to inf2 with no allocation annotation"]


def test_a_record_for_another_node_fails():
    _, wrong = problems(
        NODES, [pod("a", "inf2", Resource.NEURONCORE, 1, [0], recorded_node="trn1")]
    )
    assert wrong == ["a: bound to inf2 but its annotation says trn1"]


def test_an_unreadable_record_fails():
    bad = pod("a", "inf2", Resource.NEURONCORE, 1, [0])
    bad["metadata"]["annotations"]["neuron.k8s.local/allocation"] = json.dumps({"node": "inf2"})
    _, wrong = problems(NODES, [bad])
    assert wrong and "not readable" in wrong[0]


def test_pending_pods_are_not_checked():
    pending = pod("a", "inf2", Resource.NEURONCORE, 1, [0])
    del pending["spec"]["nodeName"]
    assert problems(NODES, [pending]) == (0, [])
