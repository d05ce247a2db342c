"""Claims the scheduler makes for pods that ask for aws.amazon.com/neuron (KEP-5004) say only
"N devices of the class", so the scheduler gives any N; the driver prepares them only when the
runtime can use them together (claims.mapped_claim_error)."""

from __future__ import annotations

from typing import Any

import pytest
from dra_harness import make_claim
from neuron_k8s.dra.claims import EXTENDED_RESOURCE_CLAIM, mapped_claim_error, requests
from neuron_k8s.topology import shape_for

NODE = "node-a"
TRN1 = shape_for("trn1.32xlarge")
INF2 = shape_for("inf2.48xlarge")


def mapped(devices: list[int], annotated: bool = True) -> dict[str, Any]:
    claim = make_claim("pod-extended-resources-x", {"container-0-request-0": devices}, pool=NODE)
    if annotated:
        claim["metadata"]["annotations"] = {EXTENDED_RESOURCE_CLAIM: "true"}
    return claim


def error(shape: Any, claim: dict[str, Any]) -> str | None:
    return mapped_claim_error(shape, claim, requests(claim, "neuron.aws.com", NODE))


@pytest.mark.parametrize("devices", [[0], [5], [0, 1, 2, 3], [12, 13, 14, 15], list(range(8, 16))])
def test_an_aligned_block_on_trn1_is_prepared(devices: list[int]) -> None:
    assert error(TRN1, mapped(devices)) is None


@pytest.mark.parametrize("devices", [[1, 2, 3, 4], [0, 1], [0, 1, 2, 5]])
def test_a_set_the_trn1_torus_refuses_is_refused_with_the_valid_sizes(devices: list[int]) -> None:
    text = error(TRN1, mapped(devices))
    assert text is not None
    assert f"as {devices}" in text and "trn1.32xlarge serves 1, 4, 8, 16 aligned blocks" in text


def test_adjacent_devices_on_the_inf2_ring_are_prepared_anywhere() -> None:
    assert error(INF2, mapped([5, 6, 7])) is None


def test_devices_with_a_gap_on_the_inf2_ring_are_refused() -> None:
    text = error(INF2, mapped([1, 11]))
    assert text is not None and "adjacent devices" in text


def test_a_claim_a_user_wrote_keeps_any_devices_it_asked_for() -> None:
    """count: N without a constraint means any N devices (docs/dra.md): only the scheduler's
    claims for the extended resource are held to the rule."""
    assert error(TRN1, mapped([1, 2, 3, 4], annotated=False)) is None
