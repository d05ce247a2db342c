"""Reading an allocated ResourceClaim: which of this node's devices each request got, the
logical NeuronCore size its NeuronConfig asks for, and the cores that makes visible."""

from __future__ import annotations

from typing import Any

import pytest
from dra_harness import make_claim, neuron_config, result
from neuron_k8s.dra.claims import ClaimError, Request, requests, spanned_devices, visible_cores
from neuron_k8s.dra.partitions import CoreSet
from neuron_k8s.topology import shape_for

NODE = "node-a"
DRIVER = "neuron.aws.com"


def read(claim: dict[str, Any]) -> list[Request]:
    return requests(claim, DRIVER, NODE)


def lnc_of(*config: dict[str, Any]) -> int | None:
    (req,) = read(make_claim("c", {"r": [0]}, NODE, config=config))
    return req.lnc


def test_a_claim_for_four_devices_gives_its_request_those_devices_in_allocation_order() -> None:
    claim = make_claim("c", {"gpus": [5, 4, 7, 6]}, NODE)
    assert read(claim) == [Request("gpus", (5, 4, 7, 6), None)]


def test_each_request_of_a_claim_gets_its_own_devices() -> None:
    claim = make_claim("c", {"a": [0, 1], "b": [8]}, NODE)
    assert read(claim) == [Request("a", (0, 1), None), Request("b", (8,), None)]


def test_results_of_other_drivers_and_other_pools_are_ignored() -> None:
    claim = make_claim(
        "c",
        {"gpus": [2]},
        NODE,
        results=[
            result("gpus", 3, "node-b"),
            result("gpus", "gpu-0", NODE, driver="gpu.example.com"),
            result("nic", "eth1", NODE, driver="net.example.com"),
        ],
    )
    assert read(claim) == [Request("gpus", (2,), None)]


def test_a_claim_with_no_device_of_this_driver_on_this_node_is_refused() -> None:
    claim = make_claim("c", {"gpus": [2]}, "node-b")
    with pytest.raises(ClaimError, match=r"the claim has no neuron\.aws\.com devices on node-a"):
        read(claim)


def test_an_unallocated_claim_is_refused() -> None:
    with pytest.raises(ClaimError, match="the claim is not allocated yet"):
        read(make_claim("c", {"gpus": [0]}, NODE, allocated=False))


def test_a_device_of_this_driver_with_a_foreign_name_is_refused_with_its_name() -> None:
    claim = make_claim("c", results=[result("gpus", "gpu0", NODE)])
    with pytest.raises(ClaimError, match="'gpu0' is not a Neuron device name"):
        read(claim)


def test_a_subrequest_of_a_prioritized_list_counts_for_its_parent_request() -> None:
    claim = make_claim("c", results=[result("gpus/big", 0, NODE), result("gpus/big", 1, NODE)])
    assert read(claim) == [Request("gpus", (0, 1), None)]


# --- NeuronConfig ---
def test_a_claim_without_neuron_config_sets_no_logical_core_size() -> None:
    assert lnc_of() is None


def test_a_neuron_config_without_logical_neuron_core_means_size_1() -> None:
    assert lnc_of(neuron_config()) == 1


def test_the_claims_own_neuron_config_overrides_the_device_classes() -> None:
    # The claim's entry listed first: the source decides, not the order.
    assert lnc_of(neuron_config(1, "FromClaim"), neuron_config(2, "FromClass")) == 1


def test_the_device_classes_neuron_config_applies_when_the_claim_has_none() -> None:
    assert lnc_of(neuron_config(2, "FromClass")) == 2


def test_a_neuron_config_naming_requests_applies_to_those_requests_only() -> None:
    claim = make_claim("c", {"a": [0], "b": [1]}, NODE, config=[neuron_config(1, requests=["b"])])
    assert {r.name: r.lnc for r in read(claim)} == {"a": None, "b": 1}


def test_a_neuron_config_naming_a_subrequest_applies_to_its_parent_request() -> None:
    claim = make_claim(
        "c", results=[result("a/small", 0, NODE)], config=[neuron_config(2, requests=["a/small"])]
    )
    assert read(claim) == [Request("a", (0,), 2)]


def test_opaque_config_of_another_driver_is_not_read() -> None:
    other = neuron_config(driver="gpu.example.com", kind="Whatever", anything=True)
    assert lnc_of(other) is None


@pytest.mark.parametrize(
    ("fields", "sentence"),
    [
        (
            {"kind": "GpuConfig"},
            "opaque config for neuron.aws.com must be apiVersion neuron.aws.com/v1, kind "
            "NeuronConfig; got 'neuron.aws.com/v1', 'GpuConfig'",
        ),
        (
            {"apiVersion": "neuron.aws.com/v2"},
            "must be apiVersion neuron.aws.com/v1, kind NeuronConfig; got 'neuron.aws.com/v2'",
        ),
        ({"cores": 4, "mode": "x"}, "NeuronConfig has unknown fields: cores, mode"),
        ({"logicalNeuronCore": 4}, "NeuronConfig logicalNeuronCore must be 1 or 2, got 4"),
        ({"logicalNeuronCore": "2"}, "NeuronConfig logicalNeuronCore must be 1 or 2, got '2'"),
        ({"logicalNeuronCore": True}, "NeuronConfig logicalNeuronCore must be 1 or 2, got True"),
        ({"logicalNeuronCore": 1.5}, "NeuronConfig logicalNeuronCore must be 1 or 2, got 1.5"),
    ],
)
def test_a_bad_neuron_config_is_refused_with_a_sentence_saying_why(
    fields: dict[str, Any], sentence: str
) -> None:
    with pytest.raises(ClaimError) as err:
        lnc_of(neuron_config(**fields))
    assert sentence in str(err.value)


def test_a_bad_neuron_config_from_the_class_is_refused_even_if_the_claim_sets_one() -> None:
    with pytest.raises(ClaimError, match="unknown fields: typo"):
        lnc_of(neuron_config(1, "FromClaim"), neuron_config(1, "FromClass", typo=1))


# --- visible cores ---
def test_an_inf2_request_sees_the_two_cores_of_each_of_its_devices() -> None:
    shape = shape_for("inf2.48xlarge")
    assert visible_cores(shape, Request("r", (2, 3), None)) == [4, 5, 6, 7]


def test_logical_core_size_1_on_inf2_changes_nothing() -> None:
    shape = shape_for("inf2.48xlarge")
    assert visible_cores(shape, Request("r", (2, 3), 1)) == [4, 5, 6, 7]


def test_a_trn1_request_for_a_block_of_four_sees_its_eight_cores() -> None:
    shape = shape_for("trn1.32xlarge")
    assert visible_cores(shape, Request("r", (4, 5, 6, 7), 1)) == list(range(8, 16))


def test_logical_core_size_2_on_trn1_is_refused_saying_it_is_a_trn2_setting() -> None:
    with pytest.raises(ClaimError, match="logicalNeuronCore 2 applies to trn2"):
        visible_cores(shape_for("trn1.32xlarge"), Request("r", (0,), 2))


def test_a_trn2_device_shows_eight_cores_with_logical_core_size_1() -> None:
    shape = shape_for("trn2.48xlarge")
    assert visible_cores(shape, Request("r", (1,), 1)) == list(range(8, 16))


def test_a_trn2_device_shows_four_cores_with_logical_core_size_2() -> None:
    shape = shape_for("trn2.48xlarge", 1)  # the claim's size wins over the node's
    assert visible_cores(shape, Request("r", (1,), 2)) == [4, 5, 6, 7]


def test_a_trn2_claim_without_a_size_sees_the_nodes_logical_cores() -> None:
    assert visible_cores(shape_for("trn2.48xlarge", 2), Request("r", (1,), None)) == [4, 5, 6, 7]
    assert visible_cores(shape_for("trn2.48xlarge", 1), Request("r", (1,), None)) == list(
        range(8, 16)
    )


def test_visible_cores_are_in_device_order_whatever_the_allocation_order() -> None:
    shape = shape_for("trn1.32xlarge")
    assert visible_cores(shape, Request("r", (1, 0), None)) == [0, 1, 2, 3]


def test_a_device_beyond_the_node_is_refused() -> None:
    with pytest.raises(ClaimError, match="device 12 is not on this node"):
        visible_cores(shape_for("inf2.48xlarge"), Request("r", (12,), None))


# --- core partitions ---
def test_a_core_set_in_the_allocation_is_read_as_its_cores() -> None:
    claim = make_claim("c", pool=NODE, results=[result("cores", "neuroncores2-3", NODE)])
    assert read(claim) == [Request("cores", (), None, (CoreSet(2, 2),))]


def test_a_core_set_makes_exactly_its_cores_visible() -> None:
    shape = shape_for("inf2.48xlarge")
    assert visible_cores(shape, Request("r", (), None, (CoreSet(3, 4),))) == [3, 4, 5, 6]


def test_a_request_may_hold_whole_devices_and_core_sets_apart() -> None:
    shape = shape_for("inf2.48xlarge")
    req = Request("r", (0,), None, (CoreSet(5, 1),))
    assert visible_cores(shape, req) == [0, 1, 5]
    assert spanned_devices(shape, req) == (0, 2)
    assert req.device_names == ["neurondevice0", "neuroncores5-5"]


def test_a_core_set_spanning_devices_needs_the_nodes_of_each() -> None:
    assert spanned_devices(
        shape_for("inf2.48xlarge"), Request("r", (), None, (CoreSet(3, 4),))
    ) == (
        1,
        2,
        3,
    )


def test_a_core_given_twice_in_one_request_is_refused() -> None:
    with pytest.raises(ClaimError, match="some cores twice"):
        visible_cores(shape_for("inf2.48xlarge"), Request("r", (1,), None, (CoreSet(3, 1),)))


def test_a_core_set_beyond_the_node_is_refused() -> None:
    with pytest.raises(ClaimError, match="not on this node"):
        visible_cores(shape_for("inf2.24xlarge"), Request("r", (), None, (CoreSet(11, 2),)))


def test_a_trn2_core_set_with_another_logical_core_size_than_the_nodes_is_refused() -> None:
    with pytest.raises(ClaimError, match="ask for whole devices to change it"):
        visible_cores(shape_for("trn2.48xlarge", 2), Request("r", (), 1, (CoreSet(0, 2),)))


def test_a_trn2_core_set_with_the_nodes_logical_core_size_is_served() -> None:
    shape = shape_for("trn2.48xlarge", 2)
    assert visible_cores(shape, Request("r", (), 2, (CoreSet(4, 2),))) == [4, 5]


def test_a_malformed_core_set_name_is_the_claims_error() -> None:
    claim = make_claim("c", pool=NODE, results=[result("cores", "neuroncores9-2", NODE)])
    with pytest.raises(ClaimError, match="ends before it starts"):
        read(claim)
