"""What the DRA driver publishes for each Neuron instance type: device names, AWS's attributes,
the aligned-block group IDs, and how devices are cut into ResourceSlices."""

from __future__ import annotations

import re
from typing import Any

import pytest
from neuron_k8s import __version__
from neuron_k8s.dra.devices import (
    Versions,
    device_index,
    device_name,
    devices,
    slices,
)
from neuron_k8s.topology import INSTANCE_TYPES, Rule, shape_for

NODE = "node-a"
DRIVER = "neuron.aws.com"
VERSIONS = Versions("0.1.0", "2.19.64.0")
ALIGNED = sorted(t for t, (_, _, rule) in INSTANCE_TYPES.items() if rule is Rule.ALIGNED)
RING = sorted(t for t, (_, _, rule) in INSTANCE_TYPES.items() if rule is Rule.RING)
TOPOLOGY = {"topology_x", "topology_y", "topology4_id", "topology8_id"}
GROUPS = {f"resource.aws.com/devicegroup{n}_id" for n in (1, 4, 8, 16)}
# resource.k8s.io/v1: a qualified name, its identifier part a C identifier of <= 32 characters.
ATTRIBUTE_NAME = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z_][A-Za-z0-9_]{0,31}$")
SEMVER = re.compile(r"^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")


def published(instance_type: str, node: str = NODE, **kw: Any) -> list[dict[str, Any]]:
    return devices(shape_for(instance_type), node, VERSIONS, **kw)


def value(dev: dict[str, Any], attribute: str) -> Any:
    (typed,) = dev["attributes"][attribute].values()
    return typed


@pytest.mark.parametrize("instance_type", sorted(INSTANCE_TYPES))
def test_every_device_of_the_instance_type_is_published_as_neurondevice_n(
    instance_type: str,
) -> None:
    count = INSTANCE_TYPES[instance_type][0]
    assert [d["name"] for d in published(instance_type)] == [
        f"neurondevice{i}" for i in range(count)
    ]


@pytest.mark.parametrize("instance_type", sorted(INSTANCE_TYPES))
def test_each_device_carries_the_attributes_aws_documents(instance_type: str) -> None:
    for i, dev in enumerate(published(instance_type)):
        assert dev["attributes"]["deviceId"] == {"int": i}
        assert dev["attributes"]["instanceType"] == {"string": instance_type}
        assert dev["attributes"]["resourceType"] == {"string": "neuron_device"}
        assert dev["attributes"]["draDriverVersion"] == {"version": "0.1.0"}
        assert dev["attributes"]["neuronDriverVersion"] == {"string": "2.19.64.0"}


@pytest.mark.parametrize("instance_type", ALIGNED)
def test_aligned_shapes_carry_torus_coordinates_and_device_groups(instance_type: str) -> None:
    for dev in published(instance_type):
        assert set(dev["attributes"]) >= TOPOLOGY | GROUPS


@pytest.mark.parametrize("instance_type", RING)
def test_ring_shapes_carry_no_topology_or_device_group_attributes(instance_type: str) -> None:
    for dev in published(instance_type):
        assert not (TOPOLOGY | GROUPS) & set(dev["attributes"])


@pytest.mark.parametrize("instance_type", sorted(INSTANCE_TYPES))
def test_a_device_has_at_most_32_attributes_and_capacities(instance_type: str) -> None:
    for dev in published(instance_type):
        assert len(dev["attributes"]) + len(dev["capacity"]) <= 32


@pytest.mark.parametrize("instance_type", sorted(INSTANCE_TYPES))
def test_attribute_names_and_values_are_valid_for_resource_k8s_io(instance_type: str) -> None:
    for dev in published(instance_type):
        for name, typed in dev["attributes"].items():
            assert ATTRIBUTE_NAME.match(name), name
            assert len(typed) == 1 and set(typed) <= {"int", "bool", "string", "version"}, typed
            if "version" in typed:
                assert SEMVER.match(typed["version"]), typed


def test_the_package_version_is_a_valid_dra_driver_version() -> None:
    assert SEMVER.match(__version__)


@pytest.mark.parametrize("instance_type", sorted(INSTANCE_TYPES))
def test_each_device_offers_its_cores_as_capacity(instance_type: str) -> None:
    shape = shape_for(instance_type)
    for dev in published(instance_type):
        assert dev["capacity"] == {"cores": {"value": str(shape.cores_per_device)}}
        assert dev["attributes"]["coreCount"] == {"int": shape.cores_per_device}


def test_a_trn2_device_offers_eight_cores_with_logical_core_size_1_and_four_with_2() -> None:
    one = devices(shape_for("trn2.48xlarge", 1), NODE, VERSIONS)[0]
    two = devices(shape_for("trn2.48xlarge", 2), NODE, VERSIONS)[0]
    assert (one["capacity"]["cores"]["value"], two["capacity"]["cores"]["value"]) == ("8", "4")


@pytest.mark.parametrize("instance_type", ALIGNED)
@pytest.mark.parametrize("size", [1, 4, 8, 16])
def test_devices_of_one_aligned_block_share_their_group_id_and_no_others_do(
    instance_type: str, size: int
) -> None:
    key = f"resource.aws.com/devicegroup{size}_id"
    ids = [value(d, key) for d in published(instance_type)]
    blocks = [ids[start : start + size] for start in range(0, len(ids), size)]
    assert all(len(set(b)) == 1 for b in blocks)
    assert len({b[0] for b in blocks}) == len(blocks)


def test_a_claim_matching_devicegroup4_id_can_only_get_blocks_0_to_3_4_to_7_and_so_on() -> None:
    by_group: dict[str, list[int]] = {}
    for i, dev in enumerate(published("trn1.32xlarge")):
        by_group.setdefault(value(dev, "resource.aws.com/devicegroup4_id"), []).append(i)
    assert sorted(by_group.values()) == [
        [0, 1, 2, 3],
        [4, 5, 6, 7],
        [8, 9, 10, 11],
        [12, 13, 14, 15],
    ]


def test_group_ids_of_two_nodes_differ() -> None:
    key = "resource.aws.com/devicegroup16_id"
    a = value(published("trn1.32xlarge", "node-a")[0], key)
    b = value(published("trn1.32xlarge", "node-b")[0], key)
    assert a != b


def test_torus_coordinates_are_row_and_column_of_the_4x4_torus() -> None:
    dev = published("trn2.48xlarge")[6]
    assert (value(dev, "topology_x"), value(dev, "topology_y")) == (1, 2)
    assert (value(dev, "topology4_id"), value(dev, "topology8_id")) == (1, 0)


def test_an_unhealthy_device_is_not_published() -> None:
    names = [d["name"] for d in published("trn1.32xlarge", unhealthy=frozenset({3, 9}))]
    assert "neurondevice3" not in names and "neurondevice9" not in names
    assert len(names) == 14


def test_the_attributes_of_healthy_devices_do_not_depend_on_unhealthy_ones() -> None:
    every = {d["name"]: d for d in published("trn1.32xlarge")}
    for dev in published("trn1.32xlarge", unhealthy=frozenset({3})):
        assert dev == every[dev["name"]]


# --- slices ---
def test_sixteen_devices_at_five_a_slice_make_four_slices_of_one_pool_and_generation() -> None:
    out = slices(NODE, DRIVER, published("trn1.32xlarge"), generation=7, per_slice=5)
    assert [len(s["spec"]["devices"]) for s in out] == [5, 5, 5, 1]
    for s in out:
        assert s["spec"]["pool"] == {"name": NODE, "generation": 7, "resourceSliceCount": 4}
        assert (s["spec"]["nodeName"], s["spec"]["driver"]) == (NODE, DRIVER)
    assert len({s["metadata"]["name"] for s in out}) == 4
    assert [d["name"] for s in out for d in s["spec"]["devices"]] == [
        device_name(i) for i in range(16)
    ]


def test_every_device_of_a_node_fits_one_slice_by_default() -> None:
    (only,) = slices(NODE, DRIVER, published("trn2.48xlarge"), generation=1)
    assert len(only["spec"]["devices"]) == 16
    assert only["spec"]["pool"]["resourceSliceCount"] == 1


def test_a_node_with_no_healthy_device_still_publishes_one_empty_slice() -> None:
    (only,) = slices(NODE, DRIVER, [], generation=3)
    assert only["spec"]["devices"] == []
    assert only["spec"]["pool"] == {"name": NODE, "generation": 3, "resourceSliceCount": 1}


def test_slices_are_resource_k8s_io_v1_with_dns_subdomain_names() -> None:
    for s in slices("ip-10-0-0-1.ec2.internal", DRIVER, published("inf2.48xlarge"), 1, 5):
        assert (s["apiVersion"], s["kind"]) == ("resource.k8s.io/v1", "ResourceSlice")
        name = s["metadata"]["name"]
        assert len(name) <= 253
        assert re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$", name)


# --- names ---
def test_a_device_name_gives_back_its_index() -> None:
    assert device_index(device_name(13)) == 13


@pytest.mark.parametrize("name", ["gpu0", "neurondevice", "neurondevice-1", "neurondevice1a"])
def test_a_name_this_driver_never_publishes_is_not_a_device_index(name: str) -> None:
    with pytest.raises(ValueError, match="not a Neuron device name"):
        device_index(name)
