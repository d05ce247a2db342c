"""The soak's accounting: double-given cores, mismatches, kubelet refusals and the verdict."""

from soak_tally import (
    Confirmed,
    Tally,
    claim_cores,
    cores_of_ids,
    overlaps,
    parse_cores,
    refused_by_kubelet,
)

A = ("ns", "a", "c0")
B = ("ns", "b", "c0")
C = ("ns", "c", "c0")


def test_containers_sharing_a_core_on_one_node_overlap() -> None:
    held = {"node1": {A: (0, 1), B: (1, 2), C: (4, 5)}}
    assert overlaps(held) == {frozenset((A, B))}


def test_the_same_cores_on_two_nodes_do_not_overlap() -> None:
    assert overlaps({"node1": {A: (0, 1)}, "node2": {B: (0, 1)}}) == set()


def test_an_overlap_counts_once_it_is_seen_twice_in_a_row() -> None:
    twice = Confirmed(needed=2)
    pair = frozenset((A, B))
    assert twice.sample({pair}) == set()
    assert twice.sample({pair}) == {pair}
    assert twice.sample({pair}) == set()
    assert twice.found == {pair}


def test_an_overlap_seen_once_then_gone_is_not_counted() -> None:
    twice = Confirmed(needed=2)
    pair = frozenset((A, B))
    twice.sample({pair})
    twice.sample(set())
    twice.sample({pair})
    assert twice.found == set()


def test_kubelet_admission_failures_are_refusals() -> None:
    assert refused_by_kubelet("Failed", "UnexpectedAdmissionError")
    assert refused_by_kubelet("Failed", "OutOfaws.amazon.com/neuroncore")
    assert not refused_by_kubelet("Failed", None)
    assert not refused_by_kubelet("Pending", "UnexpectedAdmissionError")
    assert not refused_by_kubelet("Failed", "DeadlineExceeded")


def test_visible_cores_are_read_as_lists_and_ranges() -> None:
    assert parse_cores("4,5") == (4, 5)
    assert parse_cores("2-4,0") == (0, 2, 3, 4)
    assert parse_cores("") == ()


def test_device_ids_stand_for_their_cores_and_core_ids_for_themselves() -> None:
    ids = {"aws.amazon.com/neuron": [3], "aws.amazon.com/neuroncore": [0]}
    assert cores_of_ids(ids, 2) == (0, 6, 7)


def test_a_claims_cores_are_the_union_of_its_results_on_the_node() -> None:
    results = [
        {"driver": "neuron.aws.com", "pool": "n1", "device": "neurondevice2"},
        {"driver": "neuron.aws.com", "pool": "n1", "device": "neuroncores8-9"},
        {"driver": "neuron.aws.com", "pool": "n2", "device": "neurondevice0"},
    ]
    assert claim_cores(results, "neuron.aws.com", "n1", 2) == (4, 5, 8, 9)


def test_a_container_that_saw_other_cores_is_a_mismatch_once() -> None:
    tally = Tally()
    tally.compare(A, (0, 1), (0, 1), "podresources")
    tally.compare(B, (4,), (4, 5), "claim")
    tally.compare(B, (4,), (4, 5), "claim")
    assert list(tally.mismatches) == [B]
    assert tally.checked == {"podresources": 1, "claim": 2}
    assert tally.bad()["containers unlike their claim"] == 1
    assert not tally.ok()


def test_a_clean_run_passes_and_any_bad_figure_fails() -> None:
    tally = Tally()
    tally.placed["p"] = "cores"
    tally.never_ran["q"] = "Unschedulable: no free contiguous set"
    assert tally.ok()
    assert tally.report(1).endswith("soak: PASS")
    tally.not_back.append("node1: allocatable ('11', '22'), capacity ('12', '24')")
    assert not tally.ok()
    assert tally.report(1).endswith("soak: FAIL")


def test_a_refused_pod_fails_the_run_and_is_named_in_the_report() -> None:
    tally = Tally()
    tally.refused["job-1-abcde"] = "UnexpectedAdmissionError: held by ns/job-1/warmup"
    report = tally.report(5)
    assert "job-1-abcde" in report
    assert report.endswith("soak: FAIL")


NO_PLUGIN = (
    "Pod was rejected: Allocate failed due to no healthy devices present; cannot allocate "
    "unhealthy devices aws.amazon.com/neuron, which is unexpected"
)


def test_the_kubelets_refusal_right_after_a_plugin_kill_on_that_node_is_counted_apart() -> None:
    tally = Tally()
    tally.stopped_plugin("device-plugin-killed", "node1", 100.0)
    tally.refuse("p", "node1", "UnexpectedAdmissionError", NO_PLUGIN, 102.0)
    assert tally.refused == {} and list(tally.refused_plugin_down) == ["p"]
    assert tally.ok()
    assert "refused, plugin down: p:" in tally.report(1)


def test_the_same_refusal_on_another_node_fails_the_run() -> None:
    tally = Tally()
    tally.stopped_plugin("device-plugin-killed", "node1", 100.0)
    tally.refuse("p", "node2", "UnexpectedAdmissionError", NO_PLUGIN, 102.0)
    assert list(tally.refused) == ["p"] and not tally.ok()


def test_the_same_refusal_long_after_the_fault_fails_the_run() -> None:
    tally = Tally()
    tally.stopped_plugin("kubelet-restarted", "node1", 100.0)
    tally.refuse("p", "node1", "UnexpectedAdmissionError", NO_PLUGIN, 400.0)
    assert list(tally.refused) == ["p"] and not tally.ok()


def test_a_refusal_by_the_plugin_itself_after_a_plugin_kill_fails_the_run() -> None:
    tally = Tally()
    tally.stopped_plugin("device-plugin-killed", "node1", 100.0)
    message = "Allocate failed: NeuronCores 0,1 are held by ns/job-1/warmup"
    tally.refuse("p", "node1", "UnexpectedAdmissionError", message, 101.0)
    assert list(tally.refused) == ["p"] and not tally.ok()


def test_faults_that_leave_the_plugin_running_excuse_nothing() -> None:
    tally = Tally()
    tally.stopped_plugin("device-unhealthy", "node1", 100.0)
    tally.refuse("p", "node1", "UnexpectedAdmissionError", NO_PLUGIN, 101.0)
    assert list(tally.refused) == ["p"] and not tally.ok()
