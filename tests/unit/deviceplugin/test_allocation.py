"""The allocation service without gRPC: what GetPreferredAllocation offers when no plan
applies, and what Allocate refuses, with the reason."""

from __future__ import annotations

import grpc
import pytest
from dp_harness import make_pod
from neuron_k8s.allocator import Resource
from neuron_k8s.deviceplugin.allocation import AllocationError, AllocationService
from neuron_k8s.deviceplugin.discovery import Inventory
from neuron_k8s.deviceplugin.metrics import Metrics
from neuron_k8s.deviceplugin.podview import node_pod
from neuron_k8s.deviceplugin.state import PluginState
from neuron_k8s.pods import AWS_NEURON_IDS
from neuron_k8s.topology import shape_for

NEURON, NEURONCORE = Resource.NEURON, Resource.NEURONCORE


def service(instance_type: str) -> AllocationService:
    metrics = Metrics()
    state = PluginState(Inventory(shape_for(instance_type)), metrics, withhold_in_use=True)
    return AllocationService(state, metrics)


def refusal(svc: AllocationService, resource: Resource, *containers: list[str]) -> str:
    with pytest.raises(AllocationError) as err:
        svc.allocate(resource, list(containers))
    assert err.value.code is grpc.StatusCode.FAILED_PRECONDITION
    return err.value.message


# --- GetPreferredAllocation without a plan ---
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


# --- Allocate: exactly the kubelet's IDs, or a refusal that says why ---
def test_allocate_serves_exactly_the_kubelets_ids() -> None:
    (grant,) = service("inf2.24xlarge").allocate(NEURONCORE, [["5", "6"]])
    assert grant.placement.cores == (5, 6)
    assert grant.env == {"NEURON_RT_VISIBLE_CORES": "5,6"}


def test_a_set_that_is_not_contiguous_is_refused() -> None:
    message = refusal(service("inf2.24xlarge"), NEURONCORE, ["0", "2"])
    assert "not a valid contiguous set on inf2.24xlarge" in message


def test_an_unsupported_device_count_is_refused_with_the_instance_types_rule() -> None:
    message = refusal(service("trn1.32xlarge"), NEURON, ["0", "1"])
    assert "does not support requests for device: 2" in message


def test_a_misaligned_block_is_refused() -> None:
    message = refusal(service("trn1.32xlarge"), NEURON, ["2", "3", "4", "5"])
    assert "not a valid contiguous set on trn1.32xlarge" in message


def test_cores_of_a_device_served_whole_are_refused_naming_the_holder() -> None:
    svc = service("inf2.24xlarge")
    svc.allocate(NEURON, [["1"]])
    message = refusal(svc, NEURONCORE, ["2", "3"])
    assert (
        "NeuronCores 2,3 are held by a container admitted moments ago as aws.amazon.com/neuron 1"
        in message
    )
    assert (
        svc.metrics.registry.get_sample_value(
            "neuron_device_plugin_allocation_refusals_total",
            {"resource": NEURONCORE.value, "reason": "in_use"},
        )
        == 1
    )


def test_two_containers_in_one_call_may_not_overlap() -> None:
    message = refusal(service("inf1.6xlarge"), NEURONCORE, ["0", "1"], ["0"])
    assert "asked twice" in message


def test_duplicate_ids_are_rejected() -> None:
    with pytest.raises(AllocationError) as err:
        service("inf1.6xlarge").allocate(NEURONCORE, [["3", "3"]])
    assert err.value.code is grpc.StatusCode.INVALID_ARGUMENT


def test_ids_of_other_scripts_digits_are_unknown_ids_not_an_internal_error() -> None:
    # Failed on e7426af: "²" passed str.isdigit and int() raised (INTERNAL); found by the fuzzer.
    with pytest.raises(AllocationError) as err:
        service("inf1.6xlarge").preferred(NEURONCORE, ["\u00b2", "\u0663"], [], 1)
    assert err.value.code is grpc.StatusCode.INVALID_ARGUMENT


def test_empty_container_request_is_rejected() -> None:
    with pytest.raises(AllocationError):
        service("inf1.6xlarge").allocate(NEURON, [[]])


# --- what the plugin reads off a pod ---
def test_aws_ids_are_split_by_container_request_sizes() -> None:
    pod = make_pod(
        "p",
        "n",
        [("a", "aws.amazon.com/neuroncore", 2), ("b", "aws.amazon.com/neuron", 1)],
        {AWS_NEURON_IDS: "4,5,3"},
    )
    plan = node_pod(pod, shape_for("inf2.24xlarge"), "n").plan
    assert plan is not None
    assert [(c.container, c.placement.ids, c.placement.cores) for c in plan] == [
        ("a", (4, 5), (4, 5)),
        ("b", (3,), (6, 7)),
    ]


def test_aws_ids_that_do_not_add_up_are_no_plan() -> None:
    pod = make_pod("p", "n", [("a", "aws.amazon.com/neuroncore", 2)], {AWS_NEURON_IDS: "4"})
    assert node_pod(pod, shape_for("inf2.24xlarge"), "n").plan is None


def test_ids_outside_the_node_are_no_plan() -> None:
    pod = make_pod("p", "n", [("a", "aws.amazon.com/neuron", 1)], {AWS_NEURON_IDS: "40"})
    assert node_pod(pod, shape_for("inf2.24xlarge"), "n").plan is None


def test_a_pod_with_container_states_is_past_admission() -> None:
    pod = make_pod("p", "n", [("a", "aws.amazon.com/neuron", 1)])
    shape = shape_for("inf2.24xlarge")
    assert not node_pod(pod, shape, "n").started
    pod["status"]["containerStatuses"] = [{"name": "a", "state": {"waiting": {}}}]
    assert node_pod(pod, shape, "n").started
