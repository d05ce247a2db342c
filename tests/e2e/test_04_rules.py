"""Instance-type rules and multi-container pods."""

from conftest import NEURON, NEURONCORE, Pods, contiguous, devices_of

TRN1 = "trn1.32xlarge"


def test_seven_devices_on_trn1_32xlarge_are_refused_with_the_reason(pods: Pods) -> None:
    pods.create("seven", [{NEURON: 7}], node_type=TRN1)
    message = pods.wait_unschedulable("seven", "does not support requests for device: 7")
    assert TRN1 in message


def test_eight_devices_on_trn1_32xlarge_get_an_aligned_block(pods: Pods) -> None:
    pods.create("eight", [{NEURON: 8}], node_type=TRN1)
    pods.wait_running("eight")
    cores = pods.cores("eight")
    assert len(cores) == 16 and contiguous(cores), cores
    assert devices_of(cores, 2) in (list(range(0, 8)), list(range(8, 16)))
    assert pods.allocation("eight")["containers"][0]["devices"] == devices_of(cores, 2)


def test_containers_of_one_pod_get_disjoint_contiguous_sets(pods: Pods) -> None:
    pods.create("multi", [{NEURONCORE: 2}, {NEURONCORE: 3}, {NEURON: 1}])
    pods.wait_running("multi")
    sets = [pods.cores("multi", f"c{i}") for i in range(3)]
    assert [len(s) for s in sets] == [2, 3, 2]
    for s in sets:
        assert contiguous(s), sets
    assert not set(sets[0]) & set(sets[1]) and not set(sets[2]) & (set(sets[0]) | set(sets[1]))
