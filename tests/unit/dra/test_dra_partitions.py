"""Core partitions (docs/dra.md, "Core partitions"): which sets of contiguous cores the driver
publishes beside the whole devices, the counters that keep any two allocations from sharing a
core, and the 1.34 API server's limits on a slice that holds them."""

from __future__ import annotations

from typing import Any

import pytest
from fake_api import slice_errors
from hypothesis import given, settings
from hypothesis import strategies as st
from neuron_k8s.allocator import Request, Resource, candidates, mask
from neuron_k8s.dra.devices import Versions, devices, slices_of
from neuron_k8s.dra.partitions import (
    CORE_SET_TYPE,
    CoreSet,
    contents,
    core_set_of,
    groups,
    is_core_set,
)
from neuron_k8s.topology import ALIGNED_SIZES, INSTANCE_TYPES, Rule, Shape, shape_for

NODE = "node-a"
VERSIONS = Versions("0.1.0", "fake")
SHAPES = [shape_for(t, lnc) for t in sorted(INSTANCE_TYPES) for lnc in (1, 2)]


def published(shape: Shape, unhealthy: frozenset[int] = frozenset()) -> list[dict[str, Any]]:
    return contents(shape, devices(shape, NODE, VERSIONS, unhealthy), VERSIONS, unhealthy)


def all_devices(shape: Shape, unhealthy: frozenset[int] = frozenset()) -> list[dict[str, Any]]:
    return [d for c in published(shape, unhealthy) for d in c["devices"]]


def consumed(dev: dict[str, Any]) -> set[tuple[str, str]]:
    """The (counter set, counter) pairs a device consumes, each asserted to be 1."""
    out = set()
    for c in dev["consumesCounters"]:
        for name, amount in c["counters"].items():
            assert amount == {"value": "1"}
            out.add((c["counterSet"], name))
    return out


def cores_of(shape: Shape, dev: dict[str, Any]) -> set[int]:
    if is_core_set(dev["name"]):
        return set(core_set_of(dev["name"]).cores)
    return set(shape.cores_of(dev["attributes"]["deviceId"]["int"]))


def random_shape() -> st.SearchStrategy[Shape]:
    ring = st.builds(Shape, st.integers(1, 64), st.integers(1, 16), st.just(Rule.RING))
    aligned = st.builds(
        Shape, st.sampled_from(ALIGNED_SIZES), st.integers(1, 16), st.just(Rule.ALIGNED)
    )
    return st.one_of(ring, aligned)


# --- limits and validity ---
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s.name}-{s.cores_per_device}")
def test_every_slice_passes_the_1_34_api_servers_validation(shape: Shape) -> None:
    for body in slices_of(NODE, "neuron.aws.com", published(shape), 1):
        assert slice_errors(body["spec"]) == []


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s.name}-{s.cores_per_device}")
def test_every_core_set_published_is_one_the_allocator_accepts(shape: Shape) -> None:
    for dev in all_devices(shape):
        if is_core_set(dev["name"]):
            cs = core_set_of(dev["name"])
            assert mask(cs.cores) in candidates(shape, Request(Resource.NEURONCORE, cs.count))


@given(random_shape())
@settings(max_examples=200, deadline=None)
def test_any_shape_gets_valid_slices_of_allowed_core_sets(shape: Shape) -> None:
    for body in slices_of(NODE, "neuron.aws.com", published(shape), 1):
        assert slice_errors(body["spec"]) == []
        for dev in body["spec"]["devices"]:
            if is_core_set(dev["name"]):
                cs = core_set_of(dev["name"])
                assert mask(cs.cores) in candidates(shape, Request(Resource.NEURONCORE, cs.count))


# --- counters: no two allocations share a core ---
@given(random_shape(), st.data())
@settings(max_examples=200, deadline=None)
def test_two_devices_share_a_counter_exactly_when_they_share_a_core(
    shape: Shape, data: st.DataObject
) -> None:
    every = all_devices(shape)
    a = data.draw(st.sampled_from(every))
    b = data.draw(st.sampled_from(every))
    assert bool(consumed(a) & consumed(b)) == bool(cores_of(shape, a) & cores_of(shape, b))


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s.name}-{s.cores_per_device}")
def test_every_core_is_one_counter_of_1_in_exactly_one_slice(shape: Shape) -> None:
    counters = [
        int(name.removeprefix("core"))
        for c in published(shape)
        for s in c["sharedCounters"]
        for name, amount in s["counters"].items()
        if amount == {"value": "1"}
    ]
    assert sorted(counters) == list(range(shape.cores))


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s.name}-{s.cores_per_device}")
def test_a_whole_device_consumes_the_counters_of_exactly_its_cores(shape: Shape) -> None:
    for dev in all_devices(shape):
        if not is_core_set(dev["name"]):
            assert {int(n.removeprefix("core")) for _, n in consumed(dev)} == cores_of(shape, dev)


# --- which core sets ---
def test_inf2_48xlarge_has_every_run_of_up_to_8_cores_inside_each_group_of_4_devices() -> None:
    shape = shape_for("inf2.48xlarge")
    assert groups(shape) == [range(0, 4), range(4, 8), range(8, 12)]
    for k, c in enumerate(published(shape)):
        sets = [core_set_of(d["name"]) for d in c["devices"] if is_core_set(d["name"])]
        base = 8 * k
        assert sets == [CoreSet(base + f, n) for n in range(1, 9) for f in range(9 - n)]


def test_on_trn1_32xlarge_the_groups_are_the_aligned_blocks_of_4() -> None:
    assert groups(shape_for("trn1.32xlarge")) == [range(s, s + 4) for s in range(0, 16, 4)]


def test_a_core_set_never_crosses_from_one_group_to_the_next() -> None:
    shape = shape_for("inf2.48xlarge")
    names = {d["name"] for d in all_devices(shape)}
    assert "neuroncores6-7" in names
    assert "neuroncores7-8" not in names  # cores 7 and 8: devices 3 and 4, two groups


def test_each_slice_lists_its_whole_devices_before_its_core_sets_shortest_first() -> None:
    first = published(shape_for("trn1.32xlarge"))[0]["devices"]
    assert [d["name"] for d in first[:5]] == [
        "neurondevice0",
        "neurondevice1",
        "neurondevice2",
        "neurondevice3",
        "neuroncores0-0",
    ]
    counts = [core_set_of(d["name"]).count for d in first[4:]]
    assert counts == sorted(counts)


def test_a_trn2_device_with_8_logical_cores_is_a_group_of_its_own() -> None:
    shape = shape_for("trn2.48xlarge", 1)
    assert len(groups(shape)) == 16
    assert (
        max(core_set_of(d["name"]).count for d in all_devices(shape) if is_core_set(d["name"])) == 8
    )


def test_a_device_with_16_cores_publishes_runs_only_up_to_the_longest_that_fits() -> None:
    sizes = {
        core_set_of(d["name"]).count for d in all_devices(Shape(1, 16)) if is_core_set(d["name"])
    }
    assert sizes == {1, 2, 3, 4}


# --- health ---
def test_an_unhealthy_device_takes_its_whole_device_and_every_core_set_on_it_out() -> None:
    shape = shape_for("inf2.48xlarge")
    names = {d["name"] for d in all_devices(shape, frozenset({1}))}
    assert "neurondevice1" not in names
    assert not {"neuroncores2-2", "neuroncores1-2", "neuroncores0-7"} & names
    assert {"neurondevice0", "neuroncores0-1", "neuroncores4-7"} <= names


def test_an_unhealthy_device_leaves_the_other_devices_entries_unchanged() -> None:
    shape = shape_for("trn1.32xlarge")
    every = {d["name"]: d for d in all_devices(shape)}
    for dev in all_devices(shape, frozenset({5})):
        assert dev == every[dev["name"]]


# --- attributes and names ---
def test_a_core_set_says_what_it_is_in_its_attributes_and_capacity() -> None:
    dev = next(d for d in all_devices(shape_for("inf2.48xlarge")) if d["name"] == "neuroncores3-6")
    attrs = dev["attributes"]
    assert attrs["resourceType"] == {"string": CORE_SET_TYPE}
    assert attrs["coreCount"] == {"int": 4}
    assert attrs["firstCore"] == {"int": 3}
    assert attrs["firstDevice"] == {"int": 1}
    assert attrs["deviceCount"] == {"int": 3}
    assert attrs["instanceType"] == {"string": "inf2.48xlarge"}
    assert dev["capacity"] == {"cores": {"value": "4"}}


def test_whole_devices_keep_aws_attributes_beside_core_sets() -> None:
    shape = shape_for("trn1.32xlarge")
    plain = {d["name"]: d for d in devices(shape, NODE, VERSIONS)}
    for dev in all_devices(shape):
        if not is_core_set(dev["name"]):
            assert {k: v for k, v in dev.items() if k != "consumesCounters"} == plain[dev["name"]]


def test_a_core_set_name_gives_back_its_cores() -> None:
    assert core_set_of(CoreSet(6, 3).name) == CoreSet(6, 3)
    assert CoreSet(6, 3).name == "neuroncores6-8"


@pytest.mark.parametrize(
    "name", ["neurondevice1", "neuroncores", "neuroncores3", "neuroncores5-4", "neuroncoresa-b"]
)
def test_a_name_that_is_no_core_set_is_refused(name: str) -> None:
    with pytest.raises(ValueError):
        core_set_of(name)
