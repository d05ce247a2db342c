"""How the containers of one pod are placed together (allocator.choose_all) and which pod
shapes are refused because the kubelet's random pick would decide them (allocator.pod_error)."""

from __future__ import annotations

import re

import pytest
from neuron_k8s.allocator import NoFit, Request, Resource, Stage, choose_all, fits, mask, pod_error
from neuron_k8s.topology import shape_for

INF2 = shape_for("inf2.24xlarge")  # 6 devices of 2 cores, a ring
TRN1 = shape_for("trn1.32xlarge")  # 16 devices of 2 cores, aligned blocks of 4


def core(n: int, stage: Stage = Stage.APP) -> Request:
    return Request(Resource.NEURONCORE, n, stage)


def device(n: int, stage: Stage = Stage.APP) -> Request:
    return Request(Resource.NEURON, n, stage)


def ids(shape, requests, used: int = 0) -> list[tuple[int, ...]]:
    return [p.ids for p in choose_all(shape, requests, used)]


def test_an_init_core_goes_where_the_app_container_can_grow_from_it() -> None:
    # Core 0 would pack best alone, but then the app container could not grow to 2 cores.
    assert ids(INF2, [core(1, Stage.INIT), core(2)], used=mask([1])) == [(2,), (2, 3)]


def test_an_init_device_goes_to_a_free_block_the_app_container_can_fill() -> None:
    # Device 0 is used: device 1 packs best alone, but block 0-3 can no longer take 4 devices.
    used = mask(TRN1.cores_of(0))
    assert ids(TRN1, [device(1, Stage.INIT), device(4)], used) == [(4,), (4, 5, 6, 7)]


def test_a_chain_of_init_containers_grows_inside_the_last_set() -> None:
    used = mask([1, 6])  # free runs of 4 cores: 2-5 and 7-11
    got = ids(INF2, [core(1, Stage.INIT), core(2, Stage.INIT), core(4)], used)
    assert set(got[0]) <= set(got[1]) <= set(got[2])
    assert got[2] in [(2, 3, 4, 5), (7, 8, 9, 10), (8, 9, 10, 11)]


def test_an_init_container_sits_inside_the_best_set_of_the_container_growing_from_it() -> None:
    assert ids(INF2, [core(1, Stage.INIT), core(2)], used=mask([4, 5])) == [(0,), (0, 1)]


def test_app_containers_alone_are_placed_largest_first() -> None:
    # The 2-device container takes devices 0-1; the single core fills device 2.
    assert ids(INF2, [core(1), device(2)]) == [(4,), (0, 1)]


def test_a_sidecar_keeps_its_set_and_the_app_container_gets_new_cores() -> None:
    got = ids(INF2, [core(1, Stage.INIT), core(2, Stage.SIDECAR), core(2)])
    assert set(got[0]) <= set(got[1]) and not set(got[1]) & set(got[2])


def test_a_pod_that_fits_container_by_container_but_not_together_says_so() -> None:
    with pytest.raises(
        NoFit,
        match=re.escape(
            "no free contiguous sets for all 2 containers of the pod together on "
            "inf2.24xlarge: 4 of 12 cores free, longest free run 4"
        ),
    ):
        choose_all(INF2, [core(2), core(3)], mask(range(4, 12)))


def test_a_container_with_no_free_set_is_named_in_the_reason() -> None:
    with pytest.raises(NoFit, match="no valid set of 2 contiguous free Neuron devices"):
        choose_all(INF2, [core(1, Stage.INIT), device(2)], mask([0, 4, 8]))


# --- the kubelet's random pick (a Go map) among reusable IDs ---
def test_one_of_two_reused_cores_then_a_container_growing_from_the_other_is_refused() -> None:
    # Init 0,1; a1 gets 0 or 1 at random; a2 must take the other and grow: 1,2 or nothing.
    error = pod_error([core(2, Stage.INIT), core(1), core(2)])
    assert error is not None
    assert "took 1 of the 2 its init containers left" in error and "at random" in error


def test_two_of_three_reused_cores_after_one_was_picked_at_random_are_refused() -> None:
    # Init 0-2; a1 takes one at random; a2 takes the other two, which may be 0 and 2.
    assert pod_error([core(3, Stage.INIT), core(1), core(2)]) is not None


def test_a_refused_shape_is_refused_on_every_node_with_the_sentence() -> None:
    reason = fits(INF2, (core(2, Stage.INIT), core(1), core(2)))
    assert reason == pod_error([core(2, Stage.INIT), core(1), core(2)])


def test_reused_cores_taken_one_at_a_time_are_accepted() -> None:
    requests = [core(2, Stage.INIT), core(1), core(1)]
    assert pod_error(requests) is None
    init, a1, a2 = ids(INF2, requests)
    assert {*a1, *a2} == set(init)


def test_the_container_that_takes_the_whole_pool_first_is_accepted() -> None:
    assert pod_error([core(2, Stage.INIT), core(2), core(1)]) is None


def test_one_reused_core_beside_a_container_of_the_other_resource_is_accepted() -> None:
    assert pod_error([core(2, Stage.INIT), core(1), device(1)]) is None


def test_one_reused_core_taken_by_an_init_container_leaves_the_pool_whole() -> None:
    assert pod_error([core(2, Stage.INIT), core(1, Stage.INIT), core(2)]) is None


def test_a_sidecar_taking_one_reused_core_makes_the_rest_random_too() -> None:
    assert pod_error([core(2, Stage.INIT), core(1, Stage.SIDECAR), core(2)]) is not None
