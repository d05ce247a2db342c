"""One view per Neuron node: its shape, path (device plugin or DRA), who holds which cores,
which devices are unhealthy, and how much room is left: the free sets per allowed size, the
largest request that fits now and the fragmentation (docs/kubectl-neuron.md). Pure: no I/O."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from neuron_k8s.allocator import Request, Resource, candidates, mask, unhealthy_core_mask
from neuron_k8s.coresets import free_runs, room
from neuron_k8s.dra.devices import DEFAULT_DRIVER, device_index
from neuron_k8s.dra.taints import UNHEALTHY_KEY
from neuron_k8s.nodecondition import CONDITION
from neuron_k8s.pods import (
    ALLOCATION,
    AWS_NEURON_IDS,
    INSTANCE_TYPE_LABEL,
    MAX_IDS,
    UNHEALTHY_DEVICES,
    BadPod,
    holds_resources,
    parse_id_list,
)
from neuron_k8s.topology import (
    Rule,
    Shape,
    UnknownInstanceType,
    absent_devices,
    shape_for,
    shape_from_capacity,
)

from .holdings import (
    DEVICE_PLUGIN,
    DRA,
    Holding,
    Unreadable,
    claim_holdings,
    device_plugin_holdings,
    dig,
    items,
    meta,
    pods_by_name,
)

# The label the chart's dra.nodeSelector example and the kind harness put on DRA nodes.
DRA_LABEL = "neuron.k8s.local/dra"
NEURON_KEYS = ("aws.amazon.com/neuron", "aws.amazon.com/neurondevice")
NEURONCORE_KEY = "aws.amazon.com/neuroncore"


@dataclass(frozen=True)
class Room:
    """What is free on a node: cores neither held nor on an unhealthy device."""

    free_cores: int
    device_room: tuple[tuple[int, int], ...]  # (allowed size, disjoint free sets), largest first
    largest_device_request: int  # the most whole devices one container could get now
    largest_core_request: int  # the most cores one container could get now
    free_device_runs: tuple[int, ...]  # lengths of the runs of wholly free devices

    @property
    def fragmentation(self) -> float:
        """1 - (largest core request that fits) / (free cores): 0 when every free core could
        go to one container, near 1 when the free cores are scattered in small pieces."""
        if not self.free_cores:
            return 0.0
        return round(1 - self.largest_core_request / self.free_cores, 3)


@lru_cache(maxsize=65536)
def room_of(shape: Shape, blocked: int) -> Room:
    """Room beside `blocked` cores (a mask). Memoised: a fleet has few shapes and usages."""
    free = shape.cores - (blocked & ((1 << shape.cores) - 1)).bit_count()
    sizes = tuple(
        (n, room(shape, Request(Resource.NEURON, n), blocked)) for n in shape.device_sizes()
    )
    largest_devices = next((n for n, k in sizes if k), 0)
    largest_cores = next(
        (
            n
            for n in range(free, 0, -1)
            if any(not c & blocked for c in candidates(shape, Request(Resource.NEURONCORE, n)))
        ),
        0,
    )
    cpd = (1 << shape.cores_per_device) - 1
    device_free = [not blocked >> (d * shape.cores_per_device) & cpd for d in range(shape.devices)]
    return Room(free, sizes, largest_devices, largest_cores, tuple(free_runs(device_free)))


@dataclass
class NodeView:
    name: str
    instance_type: str
    path: str  # DEVICE_PLUGIN or DRA
    shape: Shape | None  # None: a DRA node whose devices could not be read
    holdings: list[Holding] = field(default_factory=list)
    unhealthy: dict[int, str] = field(default_factory=dict)  # device -> why
    unreadable: list[Unreadable] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    labels: Mapping[str, Any] = field(default_factory=dict)

    @property
    def held(self) -> int:
        return mask(c for h in self.holdings for c in h.cores)

    @property
    def blocked(self) -> int:
        if self.shape is None:
            return 0
        return self.held | unhealthy_core_mask(self.shape, mask(self.unhealthy))

    @property
    def room(self) -> Room | None:
        return room_of(self.shape, self.blocked) if self.shape is not None else None

    def holders_by_core(self) -> dict[int, list[Holding]]:
        out: dict[int, list[Holding]] = {}
        for h in self.holdings:
            for c in h.cores:
                out.setdefault(c, []).append(h)
        return out


def _int(value: Any) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0


def _labels(node: Mapping[str, Any]) -> Mapping[str, Any]:
    labels = meta(node).get("labels")
    return labels if isinstance(labels, Mapping) else {}


def device_plugin_shape(node: Mapping[str, Any]) -> Shape | None:
    """The shape a device-plugin node advertises (capacity; the label gives the rule)."""
    capacity = dig(node, "status", "capacity") or {}
    devices = max(_int(capacity.get(k, 0)) for k in NEURON_KEYS)
    cores = _int(capacity.get(NEURONCORE_KEY, 0))
    try:
        return shape_from_capacity(_labels(node).get(INSTANCE_TYPE_LABEL), devices, cores)
    except ValueError:
        return None


def _attribute(device: Mapping[str, Any], name: str) -> Any:
    value = dig(device, "attributes", name)
    if isinstance(value, Mapping):
        return next(iter(value.values()), None)
    return None


def dra_shape(instance_type: str, devices: Sequence[Mapping[str, Any]]) -> Shape | None:
    """A DRA node's shape: its instance type's, with the cores per device its whole devices
    publish (trn2's depend on the logical core size); else what the devices themselves say."""
    whole = [d for d in devices if str(d.get("name", "")).startswith("neurondevice")]
    whole = [d for d in whole if str(d.get("name", ""))[len("neurondevice") :].isdigit()]
    per_device = {_int(_attribute(d, "coreCount")) for d in whole} - {0}
    typ = instance_type or next((str(_attribute(d, "instanceType")) for d in whole), "")
    try:
        shape = shape_for(typ)
        if len(per_device) == 1 and per_device != {shape.cores_per_device}:
            shape = shape_for(typ, shape.cores_per_device * 2 // per_device.pop())
        return shape
    except (UnknownInstanceType, ValueError, ZeroDivisionError):
        pass
    if not whole or len(per_device) != 1:
        return None
    count = 1 + max(device_index(str(d["name"])) for d in whole)
    try:
        return Shape(count, per_device.pop(), Rule.RING, None)
    except ValueError:
        return None


def pool_devices(slices: Iterable[Mapping[str, Any]], driver: str) -> dict[str, list[Any]]:
    """node -> the devices our driver publishes for it, from the newest generation of its
    pool only (slices of an older one linger while the driver replaces them)."""
    newest: dict[str, int] = {}
    mine = [s for s in slices if dig(s, "spec", "driver") == driver]
    for s in mine:
        node = str(dig(s, "spec", "nodeName") or dig(s, "spec", "pool", "name") or "")
        newest[node] = max(newest.get(node, 0), _int(dig(s, "spec", "pool", "generation") or 0))
    out: dict[str, list[Any]] = {}
    for s in mine:
        node = str(dig(s, "spec", "nodeName") or dig(s, "spec", "pool", "name") or "")
        if _int(dig(s, "spec", "pool", "generation") or 0) == newest[node]:
            out.setdefault(node, []).extend(items(dig(s, "spec", "devices")))
    return out


def dra_unhealthy(shape: Shape, devices: Sequence[Mapping[str, Any]]) -> dict[int, str]:
    """Whole devices with our unhealthy taint (its value says why), or not published at all
    (the driver leaves an unhealthy device out where the API server drops taints)."""
    out: dict[int, str] = {}
    seen = set()
    for d in devices:
        try:
            index = device_index(str(d.get("name", "")))
        except ValueError:
            continue
        seen.add(index)
        for t in items(d.get("taints")):
            if t.get("key") == UNHEALTHY_KEY:
                out[index] = f"tainted {t.get('value', '')} ({t.get('effect', '')})".strip()
    for index in range(shape.devices):
        if index not in seen and index not in out:
            out[index] = "not published by the DRA driver"
    return out


def device_plugin_health(node: Mapping[str, Any], shape: Shape) -> tuple[dict[int, str], list[str]]:
    """Unhealthy devices from the plugin's annotation, and notes: allocatable below capacity
    (a device the kubelet was told is unhealthy) and the NeuronHealth condition."""
    notes = []
    unhealthy: dict[int, str] = {}
    raw = (meta(node).get("annotations") or {}).get(UNHEALTHY_DEVICES)
    if raw:
        try:
            for d in parse_id_list(str(raw)[:4096], limit=min(shape.devices, MAX_IDS)):
                unhealthy[d] = "reported unhealthy by the device plugin"
        except ValueError as err:
            notes.append(f"annotation {UNHEALTHY_DEVICES} is unreadable: {err}")
    capacity = dig(node, "status", "capacity") or {}
    advertised = max(_int(capacity.get(k, 0)) for k in NEURON_KEYS)
    for d in absent_devices(shape, advertised):
        unhealthy.setdefault(d, f"beyond the {advertised} devices the node advertises")
    allocatable = dig(node, "status", "allocatable") or {}
    for key in (*NEURON_KEYS, NEURONCORE_KEY):
        cap, alloc = _int(capacity.get(key, 0)), _int(allocatable.get(key, 0))
        if alloc < cap:
            notes.append(f"allocatable {key} {alloc} of {cap}")
    for c in items(dig(node, "status", "conditions")):
        if c.get("type") == CONDITION and c.get("status") == "True":
            notes.append(f"{CONDITION}: {c.get('reason', '')}: {c.get('message', '')}")
    return unhealthy, notes


def _has_record(pod: Mapping[str, Any]) -> bool:
    annotations = meta(pod).get("annotations")
    return isinstance(annotations, Mapping) and (
        ALLOCATION in annotations or AWS_NEURON_IDS in annotations
    )


def node_views(
    nodes: Iterable[Mapping[str, Any]],
    pods: Iterable[Mapping[str, Any]],
    claims: Iterable[Mapping[str, Any]],
    slices: Iterable[Mapping[str, Any]],
    driver: str = DEFAULT_DRIVER,
) -> list[NodeView]:
    """A view of every Neuron node (one with Neuron capacity, or our DRA driver's slices, or
    the DRA label), sorted by name. A pod or claim that cannot be read is listed as
    unreadable on its node; it never stops the others."""
    published = pool_devices(slices, driver)
    views: dict[str, NodeView] = {}
    for node in nodes:
        name = str(meta(node).get("name", ""))
        typ = str(_labels(node).get(INSTANCE_TYPE_LABEL, ""))
        if name in published or str(_labels(node).get(DRA_LABEL, "")).lower() == "true":
            devices = published.get(name, [])
            dshape = dra_shape(typ, devices)
            view = NodeView(name, typ, DRA, dshape, labels=_labels(node))
            if dshape is not None and name in published:
                view.unhealthy = dra_unhealthy(dshape, devices)
            elif name not in published:
                view.notes.append(f"no ResourceSlices of {driver} for this node")
            views[name] = view
            continue
        shape = device_plugin_shape(node)
        if shape is not None:
            view = NodeView(name, typ, DEVICE_PLUGIN, shape, labels=_labels(node))
            view.unhealthy, view.notes = device_plugin_health(node, shape)
            views[name] = view
    pod_list = list(pods)
    for pod in pod_list:
        on = views.get(str(dig(pod, "spec", "nodeName") or ""))
        if on is None or on.path != DEVICE_PLUGIN or on.shape is None:
            continue
        if not _has_record(pod) or not holds_resources(pod):
            continue
        try:
            on.holdings += device_plugin_holdings(pod, on.shape, on.name)
        except (BadPod, ValueError) as err:
            m = meta(pod)
            on.unreadable.append(
                Unreadable(str(m.get("namespace")), str(m.get("name")), on.name, str(err))
            )
    _add_claims(views, pod_list, claims, driver)
    for view in views.values():
        _note_overlaps(view)
    return [views[k] for k in sorted(views)]


def _add_claims(
    views: Mapping[str, NodeView],
    pods: Sequence[Mapping[str, Any]],
    claims: Iterable[Mapping[str, Any]],
    driver: str,
) -> None:
    shapes = {name: v.shape for name, v in views.items() if v.path == DRA and v.shape is not None}
    by_name = pods_by_name(pods)
    for claim in claims:
        try:
            for h in claim_holdings(claim, driver, shapes, by_name):
                views[h.node].holdings.append(h)
        except (ValueError, TypeError) as err:
            m = meta(claim)
            pools = {
                str(r.get("pool"))
                for r in items(dig(claim, "status", "allocation", "devices", "results"))
            }
            for node in sorted(pools & set(shapes)):
                views[node].unreadable.append(
                    Unreadable(str(m.get("namespace")), f"claim {m.get('name')}", node, str(err))
                )


def _note_overlaps(view: NodeView) -> None:
    for core, holders in sorted(view.holders_by_core().items()):
        keys = sorted({h.key for h in holders})
        if len(keys) > 1:
            view.notes.append(f"core {core} is held by {' and '.join(keys)}")
