"""The ledger of what is in use, and the allocation service, without gRPC."""

from __future__ import annotations

import grpc
import pytest
from dp_harness import make_pod
from neuron_k8s.allocator import Resource, mask
from neuron_k8s.deviceplugin.allocation import AllocationError, AllocationService
from neuron_k8s.deviceplugin.discovery import Inventory
from neuron_k8s.deviceplugin.ledger import Grant, Ledger, pod_record
from neuron_k8s.deviceplugin.metrics import Metrics
from neuron_k8s.deviceplugin.state import PluginState
from neuron_k8s.pods import AWS_NEURON_IDS, NEURON_ALLOCATED
from neuron_k8s.topology import shape_for
from waiting import ManualClock

NEURON, NEURONCORE = Resource.NEURON, Resource.NEURONCORE


def service(instance_type: str) -> AllocationService:
    metrics = Metrics()
    state = PluginState(Inventory(shape_for(instance_type)), metrics)
    return AllocationService(state, metrics)


# --- pod records ---
def test_aws_ids_are_split_by_container_request_sizes() -> None:
    pod = make_pod(
        "p",
        "n",
        [("a", "aws.amazon.com/neuroncore", 2), ("b", "aws.amazon.com/neuron", 1)],
        {AWS_NEURON_IDS: "4,5,3"},
    )
    record = pod_record(pod, shape_for("inf2.24xlarge"))
    assert record is not None
    assert [(c.container, c.placement.ids, c.placement.cores) for c in record.containers] == [
        ("a", (4, 5), (4, 5)),
        ("b", (3,), (6, 7)),
    ]


def test_aws_ids_that_do_not_add_up_are_not_served() -> None:
    pod = make_pod("p", "n", [("a", "aws.amazon.com/neuroncore", 2)], {AWS_NEURON_IDS: "4"})
    assert pod_record(pod, shape_for("inf2.24xlarge")) is None


def test_ids_outside_the_node_are_not_served() -> None:
    pod = make_pod("p", "n", [("a", "aws.amazon.com/neuron", 1)], {AWS_NEURON_IDS: "40"})
    assert pod_record(pod, shape_for("inf2.24xlarge")) is None


# --- the ledger ---
def test_device_granted_whole_withholds_its_cores_but_not_itself() -> None:
    shape = shape_for("inf1.6xlarge")
    ledger = Ledger(shape, clock=ManualClock())
    ledger.grant(Grant(NEURON, (1,), mask(shape.cores_of(1)), 0.0, kubelet_ids=(1,)))
    assert ledger.withheld(NEURONCORE) == {4, 5, 6, 7}
    assert ledger.withheld(NEURON) == frozenset()


def test_core_granted_withholds_its_device() -> None:
    ledger = Ledger(shape_for("inf1.6xlarge"), clock=ManualClock())
    ledger.grant(Grant(NEURONCORE, (9,), 1 << 9, 0.0, kubelet_ids=(9,)))
    assert ledger.withheld(NEURON) == {2}
    assert ledger.withheld(NEURONCORE) == frozenset()


def test_grant_expires_after_its_ttl() -> None:
    clock = ManualClock()
    ledger = Ledger(shape_for("inf2.xlarge"), grant_ttl=10, clock=clock)
    ledger.grant(Grant(NEURONCORE, (0,), 1, clock.now, kubelet_ids=(0,)))
    clock.now = 9
    assert ledger.used_cores() == 1
    clock.now = 11
    assert ledger.used_cores() == 0


def test_grant_seen_by_the_kubelet_gives_way_to_its_view() -> None:
    ledger = Ledger(shape_for("inf2.xlarge"), clock=ManualClock())
    ledger.grant(Grant(NEURONCORE, (1,), 2, 0.0, kubelet_ids=(1,)))
    ledger.set_kubelet({("ns", "p", "c"): {NEURONCORE: (1,)}})
    assert [u.owner for u in ledger.uses()] == ["ns/p/c"]


def test_plan_of_a_pod_not_yet_admitted_is_no_conflict_but_is_steered_around() -> None:
    shape = shape_for("inf2.24xlarge")
    ledger = Ledger(shape, clock=ManualClock())
    pod = make_pod("p", "n", [("a", "aws.amazon.com/neuroncore", 2)], {AWS_NEURON_IDS: "0,1"})
    record = pod_record(pod, shape)
    assert record is not None
    ledger.put_pod(record)
    assert ledger.conflicts(0b11) == []
    assert ledger.used_cores() == 0b11


def test_set_of_an_allocated_pod_is_a_conflict() -> None:
    shape = shape_for("inf2.24xlarge")
    ledger = Ledger(shape, clock=ManualClock())
    notes = {AWS_NEURON_IDS: "0,1", NEURON_ALLOCATED: "true"}
    record = pod_record(make_pod("p", "n", [("a", "aws.amazon.com/neuroncore", 2)], notes), shape)
    assert record is not None
    ledger.put_pod(record)
    assert [u.owner for u in ledger.conflicts(0b10)] == ["default/p/a"]


# --- the allocation service ---
def test_preferred_cores_on_trn1_32xlarge_stay_in_an_aligned_block() -> None:
    svc = service("trn1.32xlarge")
    # 6 cores span 3 devices: they must lie within one aligned block of 4 devices (8 cores).
    chosen = [int(i) for i in svc.preferred(NEURONCORE, [str(i) for i in range(32)], [], 6)]
    assert chosen == list(range(chosen[0], chosen[0] + 6))
    assert chosen[0] // 8 == chosen[-1] // 8


def test_preferred_devices_of_an_unsupported_size_fall_back_to_the_offered_order() -> None:
    svc = service("trn1.32xlarge")
    got = svc.preferred(NEURON, [str(i) for i in range(16)], [], 3)
    assert got == ["0", "1", "2"]
    assert (
        svc.metrics.registry.get_sample_value(
            "neuron_device_plugin_preferred_allocations_total",
            {"resource": NEURON.value, "how": "fallback"},
        )
        == 1
    )


def test_preferred_one_or_all_is_always_valid_on_an_aligned_node() -> None:
    svc = service("trn1.32xlarge")
    every = [str(i) for i in range(16)]
    assert svc.preferred(NEURON, every, [], 16) == every
    assert len(svc.preferred(NEURON, every, [], 1)) == 1


def test_preferred_leaves_the_largest_free_run_on_a_ring() -> None:
    svc = service("inf2.48xlarge")
    # Free devices: 0-1 and 4-11. One device should come from the short run.
    offered = [str(i) for i in (0, 1, *range(4, 12))]
    assert svc.preferred(NEURON, offered, [], 1) in (["0"], ["1"])


def test_two_containers_in_one_call_may_not_overlap() -> None:
    svc = service("inf1.6xlarge")
    with pytest.raises(AllocationError) as err:
        svc.allocate(NEURONCORE, [["0", "1"], ["0"]])
    assert err.value.code is grpc.StatusCode.FAILED_PRECONDITION
    assert "requested twice" in err.value.message


def test_duplicate_ids_are_rejected() -> None:
    with pytest.raises(AllocationError) as err:
        service("inf1.6xlarge").allocate(NEURONCORE, [["3", "3"]])
    assert err.value.code is grpc.StatusCode.INVALID_ARGUMENT


def test_empty_container_request_is_rejected() -> None:
    with pytest.raises(AllocationError):
        service("inf1.6xlarge").allocate(NEURON, [[]])
