"""What the driver publishes: a node's Neuron devices as resource.k8s.io/v1 ResourceSlice
bodies, with the names and attributes AWS's driver documents, so that a ResourceClaimTemplate
written for AWS's `neuron.aws.com` runs unchanged. Pure: no I/O.

On aligned shapes (trn1.32xlarge, trn1n.32xlarge, trn2) each device also carries
`resource.aws.com/devicegroup{1,4,8,16}_id`: devices of one aligned block share the value, so a
claim for 4 devices with `matchAttribute: resource.aws.com/devicegroup4_id` gets exactly the
blocks topology.py accepts ({0-3}, {4-7}, ...).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from neuron_k8s.topology import ALIGNED_SIZES, Rule, Shape

from .taints import tainted

DEFAULT_DRIVER = "neuron.aws.com"
GROUP_DOMAIN = "resource.aws.com"
# resource.k8s.io/v1 ResourceSliceMaxDevices, and ResourceSliceMaxDevicesWithAdvancedFeatures
# (once a device has taints or consumes counters).
MAX_DEVICES_PER_SLICE = 128
MAX_DEVICES_WITH_TAINTS = 64
# The trn torus is 4 x 4: topology_x is the row, topology_y the column.
TORUS_COLUMNS = 4


def device_name(index: int) -> str:
    return f"neurondevice{index}"


def device_index(name: str) -> int:
    """The index of a device this driver named; ValueError for any other name."""
    prefix = "neurondevice"
    if not name.startswith(prefix) or not name[len(prefix) :].isdigit():
        raise ValueError(f"{name!r} is not a Neuron device name (neurondevice<N>)")
    return int(name[len(prefix) :])


def group_id(node: str, size: int, block: int) -> str:
    """Equal for the devices of one aligned block of one node, different for any other."""
    return hashlib.sha256(f"{node}/{size}/{block}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Versions:
    driver: str  # draDriverVersion, a semantic version
    neuron_driver: str  # neuronDriverVersion: the kernel driver's, "fake" in fake mode


def device(shape: Shape, node: str, index: int, versions: Versions) -> dict[str, Any]:
    attributes: dict[str, dict[str, Any]] = {
        "deviceId": {"int": index},
        "instanceType": {"string": shape.name},
        "resourceType": {"string": "neuron_device"},
        "draDriverVersion": {"version": versions.driver},
        "neuronDriverVersion": {"string": versions.neuron_driver},
        "coreCount": {"int": shape.cores_per_device},
    }
    if shape.rule is Rule.ALIGNED:
        attributes["topology_x"] = {"int": index // TORUS_COLUMNS}
        attributes["topology_y"] = {"int": index % TORUS_COLUMNS}
        attributes["topology4_id"] = {"int": index // 4}
        attributes["topology8_id"] = {"int": index // 8}
        for size in ALIGNED_SIZES:
            if size <= shape.devices:
                key = f"{GROUP_DOMAIN}/devicegroup{size}_id"
                attributes[key] = {"string": group_id(node, size, index // size)}
    return {
        "name": device_name(index),
        "attributes": attributes,
        "capacity": {"cores": {"value": str(shape.cores_per_device)}},
    }


def devices(
    shape: Shape, node: str, versions: Versions, unhealthy: frozenset[int] = frozenset()
) -> list[dict[str, Any]]:
    """The node's healthy devices: an unhealthy one is not published, so nothing new is
    allocated on it (claims already prepared keep it until they end). Where the API server
    keeps device taints, tainted_devices() is published instead."""
    return [device(shape, node, i, versions) for i in range(shape.devices) if i not in unhealthy]


def tainted_devices(
    shape: Shape, node: str, versions: Versions, unhealthy: Mapping[int, str], effect: str
) -> list[dict[str, Any]]:
    """Every device of the node, an unhealthy one with the unhealthy taint (taints.py)."""
    return [
        tainted(device(shape, node, i, versions), range(i, i + 1), unhealthy, effect)
        for i in range(shape.devices)
    ]


def slice_name(node: str, driver: str, index: int, count: int = 1) -> str:
    """The name of a pool's slice `index` of `count`: the index padded so that the scheduler,
    which tries slices in the order of their names, tries them in this order."""
    return f"{node}-{driver.replace('.', '-')}-{index:0{len(str(count - 1))}d}"


def chunked(
    published: list[dict[str, Any]], per_slice: int = MAX_DEVICES_PER_SLICE
) -> list[dict[str, Any]]:
    """Slice contents of whole devices only: as many slices as the per-slice limit needs (at
    least one, so that an all-unhealthy node still says it has nothing)."""
    chunks = [published[i : i + per_slice] for i in range(0, len(published), per_slice)] or [[]]
    return [{"devices": chunk} for chunk in chunks]


def slices_of(
    node: str, driver: str, contents: list[dict[str, Any]], generation: int
) -> list[dict[str, Any]]:
    """One pool named after the node, one slice per entry of `contents` (its `devices` or,
    with core partitions, its `sharedCounters`)."""
    return [
        {
            "apiVersion": "resource.k8s.io/v1",
            "kind": "ResourceSlice",
            "metadata": {"name": slice_name(node, driver, k, len(contents))},
            "spec": {
                "driver": driver,
                "nodeName": node,
                "pool": {
                    "name": node,
                    "generation": generation,
                    "resourceSliceCount": len(contents),
                },
                **content,
            },
        }
        for k, content in enumerate(contents)
    ]


def slices(
    node: str,
    driver: str,
    published: list[dict[str, Any]],
    generation: int,
    per_slice: int = MAX_DEVICES_PER_SLICE,
) -> list[dict[str, Any]]:
    """The whole devices `published`, in as many slices as the per-slice limit needs."""
    return slices_of(node, driver, chunked(published, per_slice), generation)
