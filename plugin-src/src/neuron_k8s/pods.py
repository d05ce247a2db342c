"""What a pod asks for and what it was given, read from and written to the pod's JSON. Pure.

The annotation keys are AWS's, so tools that read them keep working; the per-container detail
that AWS's extender does not publish lives in one key of ours (ALLOCATION), as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeGuard

from .allocator import RESOURCE_NAMES, Placement, Request, Resource, Stage, mask, placement_of
from .topology import MAX_CORES_PER_DEVICE, MAX_DEVICES, Shape

AWS_NEURON_IDS = "AWS_NEURON_IDS"
NEURON_ALLOCATED = "NEURON_ALLOCATED"
NEURON_ALLOC_TIME = "NEURON_ALLOC_TIME"
ALLOCATION = "neuron.k8s.local/allocation"
# On nodes: the device indices the plugin found unhealthy (health, not usage).
UNHEALTHY_DEVICES = "neuron.k8s.local/unhealthy-devices"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"

ENV_VISIBLE_CORES = "NEURON_RT_VISIBLE_CORES"


# No node has more IDs than this (the largest shape topology.Shape accepts): a record or an ID
# list naming more, or an index past it, is refused before anything is expanded or allocated.
MAX_IDS = MAX_DEVICES * MAX_CORES_PER_DEVICE
# A record is a few hundred bytes; anything far larger was not written by this stack.
MAX_RECORD_BYTES = 64 * 1024


class BadPod(ValueError):
    """The pod JSON is not shaped like a pod, or asks for Neuron resources in a way that cannot
    be served (for example two Neuron resources in one container)."""


class BadRecord(BadPod):
    """The pod carries a record (ALLOCATION or AWS_NEURON_IDS) that cannot be used: unreadable,
    outside the node's shape, or not matching what the pod's containers ask for. Pod owners
    can write these annotations (docs/security.md), so the message names what is wrong."""


@dataclass(frozen=True)
class ContainerRequest:
    container: str
    request: Request


@dataclass(frozen=True)
class ContainerAllocation:
    container: str
    placement: Placement


def _quantity(value: Any, where: str) -> int:
    try:
        n = int(str(value))
    except ValueError:
        raise BadPod(f"{where}: {value!r} is not a whole number") from None
    if n < 0:
        raise BadPod(f"{where}: {n} is negative")
    return n


def container_requests(pod: Mapping[str, Any]) -> list[ContainerRequest]:
    """The Neuron requests of the pod's containers in the kubelet's order: init containers
    (sidecars among them, `restartPolicy: Always`), then app containers. Extended resources
    must be whole numbers and may not be overcommitted, so limits and requests agree; limits
    win when only they are given."""
    spec = pod.get("spec")
    if not isinstance(spec, Mapping):
        raise BadPod("pod has no spec")
    containers = spec.get("containers")
    if not _is_list(containers):
        raise BadPod("pod spec has no containers list")
    inits = spec.get("initContainers") or []
    if not _is_list(inits):
        raise BadPod("pod spec initContainers is not a list")
    out = []
    staged: list[tuple[Any, Stage | None]] = [(c, None) for c in inits]
    staged += [(c, Stage.APP) for c in containers]
    for c, stage in staged:
        if not isinstance(c, Mapping):
            raise BadPod("a container is not an object")
        if stage is None:
            stage = Stage.SIDECAR if c.get("restartPolicy") == "Always" else Stage.INIT
        request = _request(c)
        if request is not None:
            out.append(ContainerRequest(str(c.get("name", "")), replace(request, stage=stage)))
    return out


def _is_list(value: Any) -> TypeGuard[Sequence[Any]]:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def _request(c: Mapping[str, Any]) -> Request | None:
    name = str(c.get("name", ""))
    res = c.get("resources") or {}
    if not isinstance(res, Mapping):
        raise BadPod(f"container {name}: resources is not an object")
    wanted: dict[str, int] = {}
    for section in ("requests", "limits"):
        values = res.get(section) or {}
        if not isinstance(values, Mapping):
            raise BadPod(f"container {name}: resources.{section} is not an object")
        for key, value in values.items():
            if key in RESOURCE_NAMES:
                wanted[key] = _quantity(value, f"container {name} {section} {key}")
    wanted = {k: v for k, v in wanted.items() if v > 0}
    if len(wanted) > 1:
        raise BadPod(
            f"container {name} asks for both {' and '.join(sorted(wanted))}; "
            "ask for cores or for whole devices, not both"
        )
    for key, count in wanted.items():
        return Request(Resource(key), count)
    return None


def allocation_annotations(
    node: str, allocations: Sequence[ContainerAllocation], now_ns: int
) -> dict[str, str]:
    """The annotation keys the extender writes at bind time (a merge patch of single keys)."""
    ids = [i for a in allocations for i in a.placement.ids]
    detail = {
        "node": node,
        "containers": [
            {
                "name": a.container,
                "resource": a.placement.resource.value,
                "ids": list(a.placement.ids),
                "cores": list(a.placement.cores),
                "devices": list(a.placement.devices),
            }
            for a in allocations
        ],
    }
    return {
        AWS_NEURON_IDS: ",".join(str(i) for i in ids),
        NEURON_ALLOCATED: "false",
        NEURON_ALLOC_TIME: str(now_ns),
        ALLOCATION: json.dumps(detail, separators=(",", ":"), sort_keys=True),
    }


def placement_annotations(node: str, allocations: Sequence[ContainerAllocation]) -> dict[str, str]:
    """Only the two keys that say which IDs each container has (ALLOCATION and
    AWS_NEURON_IDS), in the exact form allocation_annotations writes: what the device plugin
    merge-patches when it corrects a pod's record to what its containers were really given."""
    keys = allocation_annotations(node, allocations, 0)
    return {AWS_NEURON_IDS: keys[AWS_NEURON_IDS], ALLOCATION: keys[ALLOCATION]}


def merge_patch(annotations: Mapping[str, str | None]) -> dict[str, Any]:
    """A JSON merge patch that sets (or, with None, removes) single annotation keys and leaves
    every other key of the pod alone."""
    return {"metadata": {"annotations": dict(annotations)}}


@dataclass(frozen=True)
class Record:
    """A pod's record, validated: the node it names (None when it comes from AWS_NEURON_IDS
    alone, which names none) and one set per container that asks for Neuron resources, in the
    kubelet's order."""

    node: str | None
    allocations: tuple[ContainerAllocation, ...]


def read_allocation(pod: Mapping[str, Any]) -> tuple[str, list[ContainerAllocation]] | None:
    """The node and per-container sets of the ALLOCATION annotation, checked for form and
    bounds only (read_record checks them against the node and the pod's requests); None
    without it. Raises BadRecord when it is present but unusable."""
    meta = pod.get("metadata") or {}
    raw = (meta.get("annotations") or {}).get(ALLOCATION)
    if raw is None:
        return None
    if not isinstance(raw, str) or len(raw) > MAX_RECORD_BYTES:
        raise BadRecord(f"annotation {ALLOCATION} is not a record of this stack")
    try:
        detail = json.loads(raw)
        node = detail["node"]
        containers = detail["containers"]
        if not isinstance(node, str) or not node or not _is_list(containers) or not containers:
            raise TypeError("it needs a node name and a non-empty containers list")
        out = []
        for c in containers:
            resource = Resource(c["resource"])
            placement = Placement(
                resource, _indices(c["ids"]), _indices(c["cores"]), _indices(c["devices"])
            )
            out.append(ContainerAllocation(str(c["name"]), placement))
        return node, out
    except (ValueError, KeyError, TypeError, RecursionError) as err:  # deep JSON nesting
        raise BadRecord(f"annotation {ALLOCATION} is not readable: {err}") from None


def _indices(value: Any) -> tuple[int, ...]:
    """A non-empty list of distinct indices in [0, MAX_IDS), as written by this stack."""
    if not _is_list(value) or not value or len(value) > MAX_IDS:
        raise ValueError(f"{value!r:.80} is not a non-empty list of at most {MAX_IDS} indices")
    if not all(type(i) is int and 0 <= i < MAX_IDS for i in value):
        raise ValueError(f"{value!r:.80} holds an index that is not in 0..{MAX_IDS - 1}")
    if len(set(value)) != len(value):
        raise ValueError(f"{value!r:.80} names an index twice")
    return tuple(value)


def read_record(pod: Mapping[str, Any], shape: Shape, node: str | None = None) -> Record | None:
    """The pod's record, checked against the node's `shape` and the pod's own requests, or
    None when it carries none. ALLOCATION wins; AWS_NEURON_IDS alone (AWS's extender writes
    only that) is split by the containers' requests. With `node`, a record that names another
    node is refused. Raises BadRecord (with the reason) for anything else: every index within
    the shape, IDs, cores and devices consistent, one set per Neuron container with the
    resource and count it asks for, and containers that keep their sets (sidecars and app
    containers) never sharing a core."""
    try:
        requests = container_requests(pod)
    except BadPod as err:
        raise BadRecord(f"the pod's requests are unreadable: {err}") from None
    found = read_allocation(pod)
    if found is not None:
        named, allocations = found
        if node is not None and named != node:
            raise BadRecord(f"annotation {ALLOCATION} names node {named!r}, not {node!r}")
        for a in allocations:
            _check_placement(shape, a)
        _check_requests(requests, allocations)
        return Record(named, tuple(allocations))
    allocations_or_none = read_aws_ids(pod, shape, requests)
    if allocations_or_none is None:
        return None
    return Record(None, tuple(allocations_or_none))


def _check_placement(shape: Shape, a: ContainerAllocation) -> None:
    p = a.placement
    if max(p.cores) >= shape.cores:
        raise BadRecord(
            f"container {a.container}: core {max(p.cores)} is not on {shape.name} "
            f"({shape.cores} cores)"
        )
    if p.resource.whole_devices and len(p.cores) != len(p.devices) * shape.cores_per_device:
        raise BadRecord(f"container {a.container}: whole devices but not all of their cores")
    if placement_of(shape, p.resource, mask(p.cores)) != p:
        raise BadRecord(
            f"container {a.container}: ids {list(p.ids)}, cores {list(p.cores)} and devices "
            f"{list(p.devices)} do not describe one set on {shape.name}"
        )


def _check_requests(
    requests: Sequence[ContainerRequest], allocations: Sequence[ContainerAllocation]
) -> None:
    asked = [(r.container, r.request.resource, r.request.count) for r in requests]
    given = [(a.container, a.placement.resource, len(a.placement.ids)) for a in allocations]
    if asked != given:
        raise BadRecord(
            f"the record gives {_describe(given)} but the pod's containers ask for "
            f"{_describe(asked)}"
        )
    kept = 0
    for r, a in zip(requests, allocations, strict=True):
        if r.request.stage is Stage.INIT:
            continue  # a regular init container's IDs are reused by the containers after it
        cores = mask(a.placement.cores)
        if kept & cores:
            raise BadRecord(f"container {a.container} shares a core with an earlier container")
        kept |= cores


def _describe(items: Sequence[tuple[str, Resource, int]]) -> str:
    return ", ".join(f"{name}: {count} {resource.value}" for name, resource, count in items) or (
        "nothing"
    )


def read_aws_ids(
    pod: Mapping[str, Any],
    shape: Shape,
    requests: Sequence[ContainerRequest] | None = None,
) -> list[ContainerAllocation] | None:
    """Per-container sets from AWS's own annotation alone, which lists the IDs of the whole
    pod in container order: split by the containers' request sizes. None without it;
    BadRecord when the IDs are out of the shape's range or do not add up."""
    text = ((pod.get("metadata") or {}).get("annotations") or {}).get(AWS_NEURON_IDS)
    if text is None:
        return None
    if requests is None:
        requests = container_requests(pod)
    try:
        ids = parse_id_list(str(text)[:MAX_RECORD_BYTES], limit=MAX_IDS)
    except ValueError as err:
        raise BadRecord(f"annotation {AWS_NEURON_IDS} is not readable: {err}") from None
    out = []
    for req in requests:
        resource, count = req.request.resource, req.request.count
        mine, ids = ids[:count], ids[count:]
        if len(mine) != count:
            raise BadRecord(f"{AWS_NEURON_IDS} has fewer IDs than the containers ask for")
        limit = shape.devices if resource.whole_devices else shape.cores
        if max(mine) >= limit or len(set(mine)) != len(mine):
            raise BadRecord(
                f"{AWS_NEURON_IDS} IDs {mine} are not distinct {resource.value} IDs of "
                f"{shape.name} (0..{limit - 1})"
            )
        cores = mask(
            c for i in mine for c in (shape.cores_of(i) if resource.whole_devices else [i])
        )
        out.append(ContainerAllocation(req.container, placement_of(shape, resource, cores)))
    if ids:
        raise BadRecord(f"{AWS_NEURON_IDS} has more IDs than the containers ask for")
    return out


def is_allocated(pod: Mapping[str, Any]) -> bool:
    meta = pod.get("metadata") or {}
    return (meta.get("annotations") or {}).get(NEURON_ALLOCATED) == "true"


def holds_resources(pod: Mapping[str, Any]) -> bool:
    """Whether a pod still holds its devices: until it has finished or is gone. A pod that is
    being deleted keeps them: its containers may still be running."""
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def visible_cores_env(cores: Sequence[int]) -> str:
    return ",".join(str(c) for c in sorted(cores))


def parse_id_list(text: str, limit: int = MAX_IDS) -> list[int]:
    """Parse "0,1,2" (as in AWS_NEURON_IDS); also accepts ranges "0-3" written by hand. Every
    index must be below `limit`, and at most `limit` are returned: checked before a range is
    expanded, since anyone who may annotate a pod can write this."""
    out: list[int] = []
    bounds: tuple[int, ...]
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = (int(x) for x in part.split("-", 1))
            if hi < lo:
                raise ValueError(f"range {part!r} runs backwards")
            bounds = (lo, hi)
        else:
            lo = hi = int(part)
            bounds = (lo,)
        if any(not 0 <= i < limit for i in bounds):
            raise ValueError(f"{part!r} is not within 0..{limit - 1}")
        if len(out) + hi - lo + 1 > limit:
            raise ValueError(f"more than {limit} IDs")
        out.extend(range(lo, hi + 1))
    return out
