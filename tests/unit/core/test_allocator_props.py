"""Properties of the allocator, checked against a brute-force statement of the rules."""

from __future__ import annotations

from core_strategies import shape_and_request, shapes, span, used_masks, valid_sets
from hypothesis import given, settings
from hypothesis import strategies as st
from neuron_k8s import allocator, coresets
from neuron_k8s.allocator import NoFit, Request, Resource, choose, choose_all, mask
from neuron_k8s.topology import Shape

SETTINGS = settings(max_examples=60, deadline=None)


def attempt(shape: Shape, request: Request, used: int, unhealthy: int = 0, must=()) -> int | None:
    try:
        return mask(choose(shape, request, used, unhealthy, must).cores)
    except NoFit:
        return None


@SETTINGS
@given(shape_and_request(), st.data())
def test_chosen_set_never_overlaps_used_cores(case: tuple, data: st.DataObject) -> None:
    shape, request = case
    used = data.draw(used_masks(shape))
    got = attempt(shape, request, used)
    assert got is None or not got & used


@SETTINGS
@given(shape_and_request(), st.data())
def test_chosen_set_is_one_the_rules_allow(case: tuple, data: st.DataObject) -> None:
    shape, request = case
    got = attempt(shape, request, data.draw(used_masks(shape)))
    assert got is None or got in set(valid_sets(shape, request))


@SETTINGS
@given(shape_and_request(), st.data())
def test_no_fit_only_when_no_valid_set_is_free(case: tuple, data: st.DataObject) -> None:
    shape, request = case
    used = data.draw(used_masks(shape))
    free = [s for s in valid_sets(shape, request) if not s & used]
    assert (attempt(shape, request, used) is None) == (not free)


@SETTINGS
@given(shape_and_request(), st.data())
def test_cores_are_packed_onto_as_few_devices_as_possible(case: tuple, data: st.DataObject) -> None:
    shape, request = case
    used = data.draw(used_masks(shape))
    got = attempt(shape, request, used)
    if got is not None:
        best = min(span(shape, s) for s in valid_sets(shape, request) if not s & used)
        assert span(shape, got) == best


@SETTINGS
@given(shape_and_request(), st.data())
def test_whole_devices_carry_every_core_of_them(case: tuple, data: st.DataObject) -> None:
    shape, request = case
    if not request.resource.whole_devices:
        return
    try:
        p = choose(shape, request, data.draw(used_masks(shape)))
    except NoFit:
        return
    assert len(p.devices) == request.count and p.ids == p.devices
    assert p.cores == tuple(c for d in p.devices for c in shape.cores_of(d))


@SETTINGS
@given(shape_and_request(), st.data())
def test_choice_is_deterministic(case: tuple, data: st.DataObject) -> None:
    shape, request = case
    used = data.draw(used_masks(shape))
    first = attempt(shape, request, used)
    for memo in (allocator._choose, coresets.ranked, coresets.quality):
        memo.cache_clear()
    assert attempt(shape, request, used) == first


@SETTINGS
@given(shape_and_request(), st.data())
def test_unhealthy_devices_are_never_chosen(case: tuple, data: st.DataObject) -> None:
    shape, request = case
    sick = data.draw(st.integers(0, shape.devices - 1))
    got = attempt(shape, request, 0, 1 << sick)
    assert got is None or not got & mask(shape.cores_of(sick))


@SETTINGS
@given(shape_and_request(), st.data())
def test_must_include_is_honoured(case: tuple, data: st.DataObject) -> None:
    shape, request = case
    limit = shape.devices if request.resource.whole_devices else shape.cores
    must = data.draw(st.integers(0, limit - 1))
    try:
        p = choose(shape, request, 0, 0, [must])
    except NoFit:
        return
    assert must in p.ids


@SETTINGS
@given(shapes, st.data())
def test_device_and_core_accounting_is_joint(shape: Shape, data: st.DataObject) -> None:
    """A device handed out whole leaves none of its cores free, and the reverse."""
    n = data.draw(st.integers(1, shape.devices))
    try:
        whole = choose(shape, Request(Resource.NEURON, n))
    except NoFit:
        return
    used = mask(whole.cores)
    rest = shape.cores - len(whole.cores)
    if rest:
        cores = choose(shape, Request(Resource.NEURONCORE, 1), used)
        assert shape.device_of(cores.cores[0]) not in whole.devices
    core = choose(shape, Request(Resource.NEURONCORE, 1))
    got = attempt(shape, Request(Resource.NEURON, shape.devices), mask(core.cores))
    assert got is None


@SETTINGS
@given(shapes, st.data())
def test_one_or_all_fits_an_empty_node(shape: Shape, data: st.DataObject) -> None:
    for request in (
        Request(Resource.NEURON, 1),
        Request(Resource.NEURON, shape.devices),
        Request(Resource.NEURONCORE, 1),
        Request(Resource.NEURONCORE, shape.cores),
    ):
        assert attempt(shape, request, 0) is not None


@SETTINGS
@given(shapes, st.data())
def test_containers_of_one_pod_get_disjoint_sets(shape: Shape, data: st.DataObject) -> None:
    requests = data.draw(
        st.lists(
            st.builds(
                Request,
                st.just(Resource.NEURONCORE),
                st.integers(1, max(1, shape.cores // 3)),
            ),
            min_size=1,
            max_size=3,
        )
    )
    try:
        placements = choose_all(shape, requests)
    except NoFit:
        return
    seen = 0
    for r, p in zip(requests, placements, strict=True):
        assert len(p.cores) == r.count
        assert not mask(p.cores) & seen
        seen |= mask(p.cores)


def test_no_fit_says_how_much_is_free() -> None:
    from neuron_k8s.topology import shape_for

    shape = shape_for("inf2.24xlarge")
    used = mask([0, 1, 4, 5, 8, 9])  # devices 0, 2, 4 used: no 2 contiguous free devices
    try:
        choose(shape, Request(Resource.NEURON, 2), used)
    except NoFit as err:
        assert "3 of 6 devices free, longest free run 1" in str(err)
    else:
        raise AssertionError("expected NoFit")


def test_no_fit_names_the_unsupported_trn1_size() -> None:
    from neuron_k8s.topology import shape_for

    try:
        choose(shape_for("trn1.32xlarge"), Request(Resource.NEURON, 7))
    except NoFit as err:
        assert str(err).startswith(
            "Instance type trn1.32xlarge does not support requests for device: 7. "
            "Please request a different number of devices"
        )
    else:
        raise AssertionError("expected NoFit")
