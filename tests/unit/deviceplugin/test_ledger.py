"""The ledger of what the kubelet holds on the node: PodResources snapshots and Allocate
answers, joined in cores across the two resources."""

from __future__ import annotations

from neuron_k8s.allocator import Resource, mask
from neuron_k8s.deviceplugin.ledger import Ledger, Served, Snapshot
from neuron_k8s.topology import shape_for

NEURON, NEURONCORE = Resource.NEURON, Resource.NEURONCORE
SHAPE = shape_for("inf1.6xlarge")  # 4 devices x 4 cores


def listed(*entries: tuple[str, Resource, tuple[int, ...]], taken: float = 10.0) -> Snapshot:
    containers = {("default", pod, "main"): {r: ids} for pod, r, ids in entries}
    return Snapshot(containers, frozenset(("default", p) for p, _, _ in entries), taken)


def test_a_device_served_whole_withholds_its_cores_but_not_itself() -> None:
    ledger = Ledger(SHAPE)
    ledger.serve(Served(NEURON, (1,), 0.0))
    assert ledger.withheld(NEURONCORE) == {4, 5, 6, 7}
    assert ledger.withheld(NEURON) == frozenset()


def test_a_core_served_withholds_its_device() -> None:
    ledger = Ledger(SHAPE)
    ledger.serve(Served(NEURONCORE, (9,), 0.0))
    assert ledger.withheld(NEURON) == {2}


def test_plans_withhold_nothing() -> None:
    # Only what the kubelet holds is withheld: a pod still waiting holds nothing.
    assert Ledger(SHAPE).withheld(NEURON) == frozenset() == Ledger(SHAPE).withheld(NEURONCORE)


def test_an_answer_gives_way_to_a_list_taken_well_after_it() -> None:
    ledger = Ledger(SHAPE, confirm_after=1.0)
    ledger.serve(Served(NEURONCORE, (9,), at=5.0))
    ledger.take(listed(taken=5.5))  # may have missed it: kept
    assert ledger.held() == mask([9])
    ledger.take(listed(taken=6.5))  # would have shown it: the container is gone
    assert ledger.held() == 0


def test_an_init_containers_answer_outlives_lists_until_its_pod_goes() -> None:
    ledger = Ledger(SHAPE)
    ledger.serve(Served(NEURON, (0,), 0.0, "uid-p", "default/p", "init", init=True))
    ledger.take(listed(taken=100.0))
    assert ledger.held(NEURON) == mask(range(4))
    ledger.forget_pod("default", "p", "uid-p")
    assert ledger.held() == 0


def test_ids_handed_out_again_mean_their_earlier_holder_is_gone() -> None:
    ledger = Ledger(SHAPE)
    ledger.take(listed(("old", NEURONCORE, (0, 1))))
    ledger.serve(Served(NEURONCORE, (1, 2), 11.0))
    assert ledger.held() == mask([1, 2])


def test_ids_reused_within_one_pod_keep_the_init_containers_record() -> None:
    ledger = Ledger(SHAPE)
    ledger.serve(Served(NEURONCORE, (4, 5), 0.0, "uid-p", "default/p", "init", init=True))
    ledger.serve(Served(NEURONCORE, (4, 5), 1.0, "uid-p", "default/p", "main"))
    assert ledger.known("default", "p", "uid-p") == {
        "init": {NEURONCORE: (4, 5)},
        "main": {NEURONCORE: (4, 5)},
    }


def test_a_pod_gone_from_the_api_frees_what_the_last_list_said_it_held() -> None:
    ledger = Ledger(SHAPE)
    ledger.take(listed(("old", NEURON, (2,)), ("kept", NEURON, (3,))))
    ledger.forget_pod("default", "old", "uid-old")
    assert ledger.held() == mask(range(12, 16))


def test_conflicts_are_holders_through_the_other_resource_only() -> None:
    ledger = Ledger(SHAPE)
    ledger.take(listed(("whole", NEURON, (1,)), ("cores", NEURONCORE, (0,))))
    (holder,) = ledger.conflicts(NEURONCORE, mask([4, 5]))
    assert holder.owner == "default/whole/main" and holder.ids == (1,)
    # The kubelet's own resource is its business: it reuses IDs only when it may.
    assert ledger.conflicts(NEURONCORE, mask([0])) == []


def test_known_joins_the_list_by_name_and_answers_by_uid() -> None:
    ledger = Ledger(SHAPE)
    ledger.take(listed(("p", NEURONCORE, (2, 3))))
    ledger.serve(Served(NEURON, (3,), 20.0, "uid-p", "default/p", "init", init=True))
    assert ledger.known("default", "p", "uid-p") == {
        "main": {NEURONCORE: (2, 3)},
        "init": {NEURON: (3,)},
    }
    assert ledger.known("default", "p", "uid-other") == {"main": {NEURONCORE: (2, 3)}}
