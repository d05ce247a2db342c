"""Properties of the topology table and the per-instance-type rules."""

from __future__ import annotations

import pytest
from core_strategies import ALIGNED_BLOCKS, shapes
from hypothesis import given
from hypothesis import strategies as st
from neuron_k8s.topology import (
    INSTANCE_TYPES,
    Rule,
    Shape,
    UnknownInstanceType,
    absent_devices,
    lnc_cores_per_device,
    shape_for,
    shape_from_capacity,
)

ALIGNED_TYPES = ["trn1.32xlarge", "trn1n.32xlarge", "trn2.48xlarge", "trn2u.48xlarge"]


@pytest.mark.parametrize("instance_type", sorted(INSTANCE_TYPES))
def test_every_instance_type_has_its_facts_table_counts(instance_type: str) -> None:
    devices, _, rule = INSTANCE_TYPES[instance_type]
    shape = shape_for(instance_type)
    assert shape.devices == devices and shape.rule is rule
    assert shape.cores == devices * shape.cores_per_device


def test_trn2_logical_core_size_changes_cores_per_device() -> None:
    assert shape_for("trn2.48xlarge", 2).cores == 64
    assert shape_for("trn2.48xlarge", 1).cores == 128
    with pytest.raises(ValueError):
        lnc_cores_per_device(3)


def test_unknown_instance_type_is_refused() -> None:
    with pytest.raises(UnknownInstanceType):
        shape_for("p4d.24xlarge")


@given(shapes, st.data())
def test_core_and_device_indices_map_both_ways(shape: Shape, data: st.DataObject) -> None:
    device = data.draw(st.integers(0, shape.devices - 1))
    assert all(shape.device_of(c) == device for c in shape.cores_of(device))


@given(shapes, st.integers(1, 16))
def test_ring_device_starts_are_runs_without_wrap(shape: Shape, count: int) -> None:
    if shape.rule is not Rule.RING:
        return
    starts = shape.device_starts(count)
    if count > shape.devices:
        assert not starts
    else:
        assert list(starts) == list(range(shape.devices - count + 1))


@pytest.mark.parametrize("instance_type", ALIGNED_TYPES)
@pytest.mark.parametrize("count", range(1, 17))
def test_aligned_types_accept_only_1_4_8_16_on_aligned_blocks(
    instance_type: str, count: int
) -> None:
    shape = shape_for(instance_type)
    starts = list(shape.device_starts(count))
    if count in ALIGNED_BLOCKS:
        assert starts == list(range(0, 16, count))
        assert shape.device_request_error(count) is None
    else:
        assert starts == []
        assert shape.device_request_error(count) == (
            f"Instance type {instance_type} does not support requests for device: {count}. "
            "Please request a different number of devices (valid: 1, 4, 8, 16)."
        )


@given(shapes)
def test_one_or_all_devices_is_always_valid(shape: Shape) -> None:
    assert shape.device_request_error(1) is None
    assert shape.device_request_error(shape.devices) is None
    assert shape.core_request_error(1) is None
    assert shape.core_request_error(shape.cores) is None


@given(shapes)
def test_more_than_the_node_has_is_never_valid(shape: Shape) -> None:
    assert shape.device_request_error(shape.devices + 1) is not None
    assert shape.core_request_error(shape.cores + 1) is not None
    assert shape.device_request_error(0) is not None


@given(st.sampled_from(sorted(INSTANCE_TYPES)), st.data())
def test_capacity_short_of_the_instance_type_keeps_its_shape_and_marks_the_rest_absent(
    instance_type: str, data: st.DataObject
) -> None:
    full = shape_for(instance_type)
    devices = data.draw(st.integers(1, full.devices), label="advertised devices")
    shape = shape_from_capacity(instance_type, devices, devices * full.cores_per_device)
    assert shape == full
    assert list(absent_devices(shape, devices)) == list(range(devices, full.devices))


@given(st.integers(1, 64), st.integers(1, 16))
def test_capacity_without_a_known_type_is_a_ring_of_what_it_says(devices: int, per: int) -> None:
    shape = shape_from_capacity("kind-worker", devices, devices * per)
    assert shape is not None
    assert (shape.devices, shape.cores_per_device, shape.rule) == (devices, per, Rule.RING)
    assert not absent_devices(shape, devices)
