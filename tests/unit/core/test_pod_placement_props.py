"""Properties of the placement of whole pods (allocator.choose_all), checked against a
brute-force statement of the kubelet's reuse rules (kubelet_reuse.py)."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st
from kubelet_reuse import (
    blocked,
    fit_exists,
    outcomes_of_plan,
    plan_error,
    pods,
    small_shapes,
    usages,
)
from neuron_k8s import coresets, podplan
from neuron_k8s.allocator import NoFit, Request, Resource, Stage, choose_all, mask, pod_error
from neuron_k8s.topology import Shape, shape_for

SETTINGS = settings(max_examples=300, deadline=None)

Case = tuple[
    Shape, list[Request], int, int
]  # shape, the pod's requests, used cores, unhealthy devices


@st.composite
def cases(draw: st.DrawFn) -> Case:
    shape = draw(small_shapes)
    used, unhealthy = draw(usages(shape))
    return shape, draw(pods(shape)), used, unhealthy


INIT_CORE_THEN_TWO = (
    shape_for("inf2.24xlarge"),
    [Request(Resource.NEURONCORE, 1, Stage.INIT), Request(Resource.NEURONCORE, 2)],
    mask([1]),
    0,
)
INIT_DEVICE_THEN_FOUR = (
    shape_for("trn1.32xlarge"),
    [Request(Resource.NEURON, 1, Stage.INIT), Request(Resource.NEURON, 4)],
    mask([0, 1]),
    0,
)
ONE_OF_TWO_THEN_TWO = (
    shape_for("inf2.24xlarge"),
    [
        Request(Resource.NEURONCORE, 2, Stage.INIT),
        Request(Resource.NEURONCORE, 1),
        Request(Resource.NEURONCORE, 2),
    ],
    mask(range(3, 12)),  # cores 0-2 free: the init container can only go to one end
    0,
)


def attempt(case: Case) -> list[int] | None:
    shape, requests, used, unhealthy = case
    try:
        return [mask(p.cores) for p in choose_all(shape, requests, used, unhealthy)]
    except NoFit:
        return None


@SETTINGS
@given(cases())
@example(INIT_CORE_THEN_TWO)
@example(INIT_DEVICE_THEN_FOUR)
def test_a_pod_is_placed_exactly_when_the_kubelet_could_admit_it(case: Case) -> None:
    shape, requests, used, unhealthy = case
    if pod_error(requests) is None:
        exists = fit_exists(shape, requests, blocked(shape, used, unhealthy), every_pick=False)
        assert (attempt(case) is not None) == exists


@SETTINGS
@given(cases())
def test_every_planned_set_is_one_the_kubelet_would_hand_out(case: Case) -> None:
    shape, requests, used, unhealthy = case
    plan = attempt(case)
    if plan is not None:
        assert plan_error(shape, requests, blocked(shape, used, unhealthy), plan) == ""


@SETTINGS
@given(cases())
@example(ONE_OF_TWO_THEN_TWO)
def test_the_plan_holds_whichever_ids_the_kubelet_picks_at_random(case: Case) -> None:
    shape, requests, used, unhealthy = case
    plan = attempt(case)
    if plan is not None:
        wrong = set(outcomes_of_plan(shape, requests, blocked(shape, used, unhealthy), plan))
        assert wrong == {""}


@SETTINGS
@given(cases())
@example(ONE_OF_TWO_THEN_TWO)
def test_an_accepted_pod_fits_whatever_the_kubelet_picks(case: Case) -> None:
    shape, requests, used, unhealthy = case
    if pod_error(requests) is None:
        cores = blocked(shape, used, unhealthy)
        assert fit_exists(shape, requests, cores, every_pick=True) == fit_exists(
            shape, requests, cores, every_pick=False
        )


@SETTINGS
@given(cases())
def test_the_plan_does_not_depend_on_what_was_memoised(case: Case) -> None:
    first = attempt(case)
    for memo in (podplan.plan, coresets.ranked, coresets.quality):
        memo.cache_clear()
    assert attempt(case) == first
