"""Adjacent devices on request (docs/dra.md, "Core partitions"): the runs of two or more whole
devices published as devices of their own (`neurondevices<first>-<last>`), which a claim asks
for with `count: 1` and `deviceCount == N`, and how a prepared claim for one sees its cores."""

from __future__ import annotations

from typing import Any

import pytest
from neuron_k8s.dra.claims import (
    ClaimError,
    Request,
    requests,
    spanned_devices,
    visible_cores,
)
from neuron_k8s.dra.devices import Versions
from neuron_k8s.dra.devicesets import (
    DEVICE_SET_TYPE,
    DeviceSet,
    device_set_of,
    device_sets,
    is_device_set,
)
from neuron_k8s.dra.partitions import contents
from neuron_k8s.topology import INSTANCE_TYPES, shape_for

NODE = "node-a"
VERSIONS = Versions("0.1.0", "fake")
TYPES = sorted(INSTANCE_TYPES)


def published_sets(instance_type: str, lnc: int = 2) -> list[dict[str, Any]]:
    out = contents(shape_for(instance_type, lnc), NODE, VERSIONS)
    return [d for c in out for d in c.get("devices", []) if is_device_set(d["name"])]


def runs(instance_type: str, lnc: int = 2) -> set[tuple[int, int]]:
    return {(ds.first, ds.count) for ds in device_sets(shape_for(instance_type, lnc))}


def test_inf2_48xlarge_publishes_every_run_of_2_to_12_adjacent_devices() -> None:
    assert runs("inf2.48xlarge") == {(f, n) for n in range(2, 13) for f in range(13 - n)}


def test_trn1_32xlarge_publishes_the_aligned_blocks_of_4_8_and_16_only() -> None:
    assert runs("trn1.32xlarge") == {(0, 4), (4, 4), (8, 4), (12, 4), (0, 8), (8, 8), (0, 16)}


def test_trn2_with_8_cores_a_device_has_no_16_device_set_which_exceeds_two_counter_sets() -> None:
    assert (0, 16) not in runs("trn2.48xlarge", 1)
    assert {(0, 8), (8, 8), (12, 4)} <= runs("trn2.48xlarge", 1)
    assert (0, 16) in runs("trn2.48xlarge", 2)


@pytest.mark.parametrize("instance_type", ["inf1.xlarge", "inf2.8xlarge", "trn1.2xlarge"])
def test_a_node_of_one_device_has_no_device_set(instance_type: str) -> None:
    assert runs(instance_type) == set()


@pytest.mark.parametrize("instance_type", TYPES)
def test_every_device_set_is_a_whole_device_set_topology_accepts(instance_type: str) -> None:
    for lnc in (1, 2):
        shape = shape_for(instance_type, lnc)
        for ds in device_sets(shape):
            assert ds.first in shape.device_starts(ds.count)


def test_a_device_set_says_what_it_is_and_consumes_all_of_its_cores() -> None:
    dev = next(d for d in published_sets("inf2.48xlarge") if d["name"] == "neurondevices3-4")
    assert dev["attributes"] == {
        "instanceType": {"string": "inf2.48xlarge"},
        "resourceType": {"string": DEVICE_SET_TYPE},
        "draDriverVersion": {"version": "0.1.0"},
        "neuronDriverVersion": {"string": "fake"},
        "deviceCount": {"int": 2},
        "firstDevice": {"int": 3},
        "coreCount": {"int": 4},
        "firstCore": {"int": 6},
    }
    assert dev["capacity"] == {"cores": {"value": "4"}}
    (consumed,) = dev["consumesCounters"]
    assert sorted(consumed["counters"]) == ["core6", "core7", "core8", "core9"]


def test_device_sets_are_listed_fewest_devices_first() -> None:
    counts = [d["attributes"]["deviceCount"]["int"] for d in published_sets("inf2.48xlarge")]
    assert counts == sorted(counts)


def test_a_device_set_name_gives_back_its_devices() -> None:
    assert device_set_of(DeviceSet(4, 4).name) == DeviceSet(4, 4)
    assert DeviceSet(4, 4).name == "neurondevices4-7"


@pytest.mark.parametrize(
    "name",
    ["neurondevice1", "neurondevices", "neurondevices3", "neurondevices5-5", "neuroncores0-1"],
)
def test_a_name_that_is_no_device_set_is_refused(name: str) -> None:
    with pytest.raises(ValueError):
        device_set_of(name)


# --- a prepared claim for a device set ---
def claim_with(device: str) -> dict[str, Any]:
    result = {"request": "devs", "driver": "neuron.aws.com", "pool": NODE, "device": device}
    return {"status": {"allocation": {"devices": {"results": [result]}}}}


def test_a_claim_for_a_device_set_sees_its_contiguous_cores() -> None:
    shape = shape_for("inf2.48xlarge")
    (req,) = requests(claim_with("neurondevices5-6"), "neuron.aws.com", NODE)
    assert req.device_names == ["neurondevices5-6"]
    assert visible_cores(shape, req) == [10, 11, 12, 13]
    assert spanned_devices(shape, req) == (5, 6)


def test_a_device_set_beyond_the_node_is_refused_with_its_name() -> None:
    with pytest.raises(ClaimError, match="device set neurondevices10-13 is not on this node"):
        visible_cores(shape_for("inf2.48xlarge"), Request("d", (), None, (), (DeviceSet(10, 4),)))
