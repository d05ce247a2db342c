"""Core partitions (docs/dra.md, "Core partitions"): the slices the driver publishes on the
resource.k8s.io/v1 API of Kubernetes 1.35+ (counter sets in slices of their own, devices that
consume them in other slices of the pool), within every limit of a 1.37 API server, and which
sets of contiguous cores it publishes for each choice of sizes."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from neuron_k8s.allocator import Request, Resource, candidates, mask
from neuron_k8s.dra.devices import Versions, devices, slices_of
from neuron_k8s.dra.devicesets import device_set_of, is_device_set
from neuron_k8s.dra.partitions import (
    CORE_SET_CHOICES,
    CORE_SET_TYPE,
    CoreSet,
    contents,
    core_set_of,
    core_sets,
    is_core_set,
)
from neuron_k8s.topology import ALIGNED_SIZES, INSTANCE_TYPES, Rule, Shape, shape_for
from slice_rules import errors_1_37, pool_errors

NODE = "node-a"
VERSIONS = Versions("0.1.0", "fake")
SHAPES = [
    shape_for(t, lnc)
    for t in sorted(INSTANCE_TYPES)
    for lnc in ((1, 2) if t.startswith("trn2") else (2,))
]
CHOICES = sorted(CORE_SET_CHOICES)


def shape_id(s: Shape) -> str:
    return f"{s.name}-{s.cores_per_device}"


def published(
    shape: Shape, choice: str = "powers", unhealthy: Any = frozenset(), effect: Any = None
) -> list[dict[str, Any]]:
    return contents(shape, NODE, VERSIONS, unhealthy, choice, effect)


@lru_cache(maxsize=64)
def all_devices(shape: Shape, choice: str = "powers") -> list[dict[str, Any]]:
    return [d for c in published(shape, choice) for d in c.get("devices", [])]


def names(shape: Shape, choice: str = "powers") -> set[str]:
    return {d["name"] for d in all_devices(shape, choice)}


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
    if is_device_set(dev["name"]):
        return set(device_set_of(dev["name"]).cores(shape))
    return set(shape.cores_of(dev["attributes"]["deviceId"]["int"]))


def random_shape() -> st.SearchStrategy[Shape]:
    # Up to 32 devices: more only repeat the same runs, at seconds per example with "all".
    ring = st.builds(Shape, st.integers(1, 32), st.integers(1, 16), st.just(Rule.RING))
    aligned = st.builds(
        Shape, st.sampled_from(ALIGNED_SIZES), st.integers(1, 16), st.just(Rule.ALIGNED)
    )
    return st.one_of(ring, aligned)


# --- the 1.37 API server's limits, and the scheduler's pool ---
@pytest.mark.parametrize("choice", CHOICES)
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_every_slice_passes_the_1_37_api_servers_validation(shape: Shape, choice: str) -> None:
    for body in slices_of(NODE, "neuron.aws.com", published(shape, choice), 1):
        assert errors_1_37(body["spec"]) == []


@pytest.mark.parametrize("choice", CHOICES)
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_the_slices_make_one_pool_the_scheduler_accepts(shape: Shape, choice: str) -> None:
    bodies = slices_of(NODE, "neuron.aws.com", published(shape, choice), 1)
    assert pool_errors([b["spec"] for b in bodies]) == []


@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_every_published_device_keeps_the_per_device_limits(shape: Shape) -> None:
    for dev in all_devices(shape, "all"):
        assert len(dev["consumesCounters"]) <= 2
        assert all(len(c["counters"]) <= 32 for c in dev["consumesCounters"])
        assert len(dev["attributes"]) + len(dev["capacity"]) <= 32


@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_counter_slices_come_first_and_hold_no_devices(shape: Shape) -> None:
    out = published(shape)
    kinds = ["sharedCounters" in c for c in out]
    assert kinds == sorted(kinds, reverse=True) and kinds[0] and not kinds[-1]
    for c in out:
        assert set(c) in ({"sharedCounters"}, {"devices"})
        assert len(c.get("sharedCounters", [])) <= 8
        assert len(c.get("devices", [])) <= 64


@given(random_shape(), st.sampled_from(CHOICES))
@settings(max_examples=60, deadline=None)
def test_any_shape_gets_valid_slices_and_a_valid_pool(shape: Shape, choice: str) -> None:
    bodies = slices_of(NODE, "neuron.aws.com", published(shape, choice), 1)
    for body in bodies:
        assert errors_1_37(body["spec"]) == []
    assert pool_errors([b["spec"] for b in bodies]) == []


# --- counters: no two allocations share a core ---
@given(random_shape(), st.sampled_from(CHOICES), st.data())
@settings(max_examples=150, deadline=None)
def test_two_devices_share_a_counter_exactly_when_they_share_a_core(
    shape: Shape, choice: str, data: st.DataObject
) -> None:
    every = all_devices(shape, choice)
    a = data.draw(st.sampled_from(every))
    b = data.draw(st.sampled_from(every))
    assert bool(consumed(a) & consumed(b)) == bool(cores_of(shape, a) & cores_of(shape, b))


@given(random_shape())
@settings(max_examples=100, deadline=None)
def test_every_device_consumes_the_counters_of_exactly_its_cores(shape: Shape) -> None:
    for dev in all_devices(shape):
        assert {int(n.removeprefix("core")) for _, n in consumed(dev)} == cores_of(shape, dev)


@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_every_core_is_one_counter_of_1_in_exactly_one_counter_set(shape: Shape) -> None:
    counters = [
        int(name.removeprefix("core"))
        for c in published(shape)
        for s in c.get("sharedCounters", [])
        for name, amount in s["counters"].items()
        if amount == {"value": "1"}
    ]
    assert sorted(counters) == list(range(shape.cores))


@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_a_whole_device_consumes_one_counter_set(shape: Shape) -> None:
    for dev in all_devices(shape):
        if dev["attributes"]["resourceType"] == {"string": "neuron_device"}:
            assert len(dev["consumesCounters"]) == 1


def test_the_counter_sets_of_trn2_with_8_cores_a_device_hold_4_devices_each() -> None:
    (counter_slice,) = [
        c for c in published(shape_for("trn2.48xlarge", 1)) if "sharedCounters" in c
    ]
    assert [s["name"] for s in counter_slice["sharedCounters"]] == [f"cores-{k}" for k in range(4)]
    assert all(len(s["counters"]) == 32 for s in counter_slice["sharedCounters"])


# --- which core sets ---
@pytest.mark.parametrize("choice", CHOICES)
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_every_core_set_published_is_one_the_allocator_accepts(shape: Shape, choice: str) -> None:
    for dev in all_devices(shape, choice):
        if is_core_set(dev["name"]):
            cs = core_set_of(dev["name"])
            assert mask(cs.cores) in candidates(shape, Request(Resource.NEURONCORE, cs.count))


def test_powers_are_1_2_4_and_8_cores_at_every_start_on_inf2_48xlarge() -> None:
    shape = shape_for("inf2.48xlarge")
    sets = core_sets(shape, "powers")
    assert {cs.count for cs in sets} == {1, 2, 4, 8}
    assert [cs.first for cs in sets if cs.count == 8] == list(range(24 - 8 + 1))


def test_all_is_every_contiguous_run_of_inf2_48xlarge() -> None:
    assert len(core_sets(shape_for("inf2.48xlarge"), "all")) == 24 * 25 // 2


def test_a_core_set_crosses_the_old_group_boundary_on_a_ring() -> None:
    # cores 7 and 8 are devices 3 and 4, which 1.34's layout put in two slices
    assert {"neuroncores7-8", "neuroncores6-9"} <= names(shape_for("inf2.48xlarge"))


def test_on_trn1_a_core_set_stays_inside_the_aligned_block_of_the_devices_it_spans() -> None:
    every = names(shape_for("trn1.32xlarge"), "all")
    assert "neuroncores5-6" in every  # devices 2-3, inside block 0-3
    assert "neuroncores7-8" not in every  # devices 3-4: two blocks of 4
    assert "neuroncores6-13" not in every  # devices 3-6: two blocks of 4
    assert "neuroncores8-15" in every  # devices 4-7, a block of 4
    assert "neuroncores4-13" in every  # devices 2-6, inside block 0-7


def test_a_core_set_that_would_consume_three_counter_sets_is_not_published() -> None:
    shape = Shape(30, 3)  # counter sets of 10 devices, 30 cores
    every = {cs.name for cs in core_sets(shape, "all")}
    assert "neuroncores29-60" not in every  # cores of sets 0, 1 and 2
    assert "neuroncores30-61" in every


def test_sizes_larger_than_the_node_are_left_out() -> None:
    assert {cs.count for cs in core_sets(shape_for("inf2.xlarge"), "powers")} == {1, 2}


def test_an_unknown_choice_of_sizes_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="all, powers"):
        core_sets(shape_for("inf2.xlarge"), "some")


# --- order ---
def test_devices_go_whole_then_core_sets_then_device_sets_fewest_first() -> None:
    every = all_devices(shape_for("inf2.48xlarge"))
    kinds = [d["attributes"]["resourceType"]["string"] for d in every]
    assert kinds == sorted(kinds, key=["neuron_device", "neuron_cores", "neuron_devices"].index)
    sets = [core_set_of(d["name"]) for d in every if is_core_set(d["name"])]
    assert sets == sorted(sets, key=lambda cs: (cs.count, cs.first))
    assert [d["name"] for d in every[:2]] == ["neurondevice0", "neurondevice1"]


def test_slice_names_sort_in_the_order_of_the_slices() -> None:
    bodies = slices_of(NODE, "neuron.aws.com", published(shape_for("trn2.48xlarge", 1), "all"), 1)
    assert len(bodies) > 10
    order = [b["metadata"]["name"] for b in bodies]
    assert order == sorted(order)


# --- attributes and names ---
def test_a_core_set_says_what_it_is_in_its_attributes_and_capacity() -> None:
    dev = next(
        d for d in all_devices(shape_for("inf2.48xlarge"), "all") if d["name"] == "neuroncores3-6"
    )
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
        if dev["name"] in plain:
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
