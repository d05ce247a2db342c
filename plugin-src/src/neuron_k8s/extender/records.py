"""What the extender reads off node and pod objects: a node's Neuron shape and unhealthy
devices, and the cores a pod holds according to its own record. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..allocator import Resource, mask
from ..logs import get_logger
from ..pods import (
    ALLOCATION,
    INSTANCE_TYPE_LABEL,
    UNHEALTHY_DEVICES,
    BadPod,
    ContainerAllocation,
    holds_resources,
    parse_id_list,
    read_allocation,
)
from ..topology import Shape, shape_from_capacity

log = get_logger("extender.records")

LEGACY_INSTANCE_TYPE_LABEL = "beta.kubernetes.io/instance-type"
NO_CAPACITY = (
    "no Neuron capacity on this node (no aws.amazon.com/neuron or aws.amazon.com/neuroncore "
    "in its status.capacity)"
)
UNKNOWN_NODE = "node unknown to the Neuron extender (not yet seen by its node watch)"


@dataclass(frozen=True, slots=True)
class PodUse:
    uid: str
    key: str  # namespace/name
    node: str
    cores: int
    allocations: tuple[ContainerAllocation, ...]


def _count(value: Any) -> int:
    try:
        return max(int(str(value)), 0)
    except ValueError:
        return 0


def read_node(
    obj: dict[str, Any], instance_type_label: str = INSTANCE_TYPE_LABEL
) -> tuple[Shape | None, str | None, int]:
    """(shape, problem, unhealthy device mask) of a node object."""
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    itype = labels.get(instance_type_label) or labels.get(LEGACY_INSTANCE_TYPE_LABEL)
    capacity = (obj.get("status") or {}).get("capacity") or {}
    devices = _count(capacity.get(Resource.NEURON.value)) or _count(
        capacity.get(Resource.NEURONDEVICE.value)
    )
    cores = _count(capacity.get(Resource.NEURONCORE.value))
    try:
        shape = shape_from_capacity(itype if isinstance(itype, str) else None, devices, cores)
    except ValueError as err:
        return None, f"cannot read this node's Neuron shape: {err}", 0
    if shape is None:
        return None, NO_CAPACITY, 0
    unhealthy = 0
    raw = (meta.get("annotations") or {}).get(UNHEALTHY_DEVICES) or ""
    try:
        unhealthy = mask(d for d in parse_id_list(str(raw)) if 0 <= d < shape.devices)
    except ValueError:
        # Unreadable health: assume healthy rather than refuse the node; the kubelet still
        # refuses pods beyond allocatable.
        log.warning("unreadable unhealthy-devices annotation", node=meta.get("name"), value=raw)
    return shape, None, unhealthy


def pod_use(obj: dict[str, Any]) -> PodUse | None:
    """The cores a pod holds according to its own annotation, or None."""
    meta = obj.get("metadata") or {}
    if not (meta.get("annotations") or {}).get(ALLOCATION):
        return None
    if not holds_resources(obj):
        return None
    try:
        recorded = read_allocation(obj)
    except BadPod as err:
        log.warning("unreadable allocation", pod=pod_key(obj), error=str(err))
        return None
    if recorded is None:
        return None
    node, allocations = recorded
    bound_to = (obj.get("spec") or {}).get("nodeName")
    if bound_to and bound_to != node:
        # A record of another node than the pod is bound to (an earlier version's failed bind
        # left it): the pod runs elsewhere and holds nothing on `node`.
        return None
    cores = 0
    for a in allocations:
        cores |= mask(a.placement.cores)
    return PodUse(
        str(meta.get("uid") or pod_key(obj)), pod_key(obj), node, cores, tuple(allocations)
    )


def pod_key(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def pod_uid(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return str(meta.get("uid") or pod_key(obj))
