"""What the extender reads off node and pod objects: a node's Neuron shape and unhealthy
devices, and the cores a pod holds according to its own record. Pure.

Pod owners can write the record (docs/security.md), so it counts only when it is usable: the
pod is bound (spec.nodeName) to the node the record names, and the record passes
pods.read_record against that node's shape. For a node the node watch has not shown yet the
record is checked for form and bounds only (every index below pods.MAX_IDS, so its mask is
small) and checked in full when the node's shape arrives (extender/podrecords.py); the state
also masks every node's usage to its shape."""

from __future__ import annotations

from collections.abc import Callable
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
    read_record,
)
from ..topology import Shape, absent_devices, shape_from_capacity
from .caches import LEGACY_INSTANCE_TYPE_LABEL

log = get_logger("extender.records")

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
    return shape, None, unhealthy | mask(absent_devices(shape, devices))


class Unusable(Exception):
    """A pod's record that counts for nothing. `reason` is a metric label (unreadable, unbound,
    other_node, invalid); `node` the node the record names, when it could be read."""

    def __init__(self, reason: str, message: str, node: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.node = node


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def annotations_of(obj: dict[str, Any]) -> dict[str, Any]:
    return _dict(_dict(obj.get("metadata")).get("annotations"))


def read_use(
    obj: dict[str, Any], shape_of: Callable[[str], Shape | None] = lambda _: None
) -> PodUse | None:
    """The cores a pod holds by its record: None when it carries none or has finished; raises
    Unusable when the record cannot count (see the module's docstring). `shape_of(node)` is
    the shape of a node, None while unknown."""
    if not annotations_of(obj).get(ALLOCATION):
        return None
    if not isinstance(obj.get("status") or {}, dict) or not holds_resources(obj):
        return None
    try:
        recorded = read_allocation(obj)
    except BadPod as err:
        raise Unusable("unreadable", str(err)) from None
    if recorded is None:
        return None
    node, allocations = recorded
    bound_to = _dict(obj.get("spec")).get("nodeName")
    if not bound_to:
        # Bind writes the record and spec.nodeName in one write: an unbound pod with a record
        # wrote it itself, and must not make that node look full.
        raise Unusable("unbound", f"the pod is not bound, yet its record names node {node}", node)
    if bound_to != node:
        raise Unusable(
            "other_node", f"its record names node {node}, but the pod is bound to {bound_to}", node
        )
    shape = shape_of(node)
    if shape is not None:
        try:
            record = read_record(obj, shape, node)
        except (BadPod, TypeError, AttributeError) as err:  # Bad*, or a value of the wrong type
            raise Unusable("invalid", str(err), node) from None
        if record is not None:
            allocations = list(record.allocations)
    cores = 0
    for a in allocations:
        cores |= mask(a.placement.cores)
    return PodUse(pod_uid(obj), pod_key(obj), node, cores, tuple(allocations))


def pod_use(obj: dict[str, Any], shape: Shape | None = None) -> PodUse | None:
    """read_use, with an unusable record holding nothing."""
    try:
        return read_use(obj, lambda _: shape)
    except Unusable:
        return None


def pod_key(obj: dict[str, Any]) -> str:
    meta = _dict(obj.get("metadata"))
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def pod_uid(obj: dict[str, Any]) -> str:
    return str(_dict(obj.get("metadata")).get("uid") or pod_key(obj))
