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
from .topology import Shape

AWS_NEURON_IDS = "AWS_NEURON_IDS"
NEURON_ALLOCATED = "NEURON_ALLOCATED"
NEURON_ALLOC_TIME = "NEURON_ALLOC_TIME"
ALLOCATION = "neuron.k8s.local/allocation"
# On nodes: the device indices the plugin found unhealthy (health, not usage).
UNHEALTHY_DEVICES = "neuron.k8s.local/unhealthy-devices"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"

ENV_VISIBLE_CORES = "NEURON_RT_VISIBLE_CORES"


class BadPod(ValueError):
    """The pod JSON is not shaped like a pod, or asks for Neuron resources in a way that cannot
    be served (for example two Neuron resources in one container)."""


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


def read_allocation(pod: Mapping[str, Any]) -> tuple[str, list[ContainerAllocation]] | None:
    """The node and per-container sets recorded on the pod, or None if it has none. Raises
    BadPod when the annotation is present but unreadable."""
    meta = pod.get("metadata") or {}
    raw = (meta.get("annotations") or {}).get(ALLOCATION)
    if raw is None:
        return None
    try:
        detail = json.loads(raw)
        out = []
        for c in detail["containers"]:
            resource = Resource(c["resource"])
            placement = Placement(
                resource,
                tuple(int(i) for i in c["ids"]),
                tuple(int(i) for i in c["cores"]),
                tuple(int(i) for i in c["devices"]),
            )
            out.append(ContainerAllocation(str(c["name"]), placement))
        return str(detail["node"]), out
    except (ValueError, KeyError, TypeError) as err:
        raise BadPod(f"annotation {ALLOCATION} is not readable: {err}") from None


def read_aws_ids(pod: Mapping[str, Any], shape: Shape) -> list[ContainerAllocation] | None:
    """Per-container sets from AWS's own annotation alone, which lists the IDs of the whole
    pod in container order: split by the containers' request sizes. None without it; BadPod
    when the IDs do not add up."""
    text = ((pod.get("metadata") or {}).get("annotations") or {}).get(AWS_NEURON_IDS)
    if text is None:
        return None
    ids = parse_id_list(str(text))
    out = []
    for req in container_requests(pod):
        resource, count = req.request.resource, req.request.count
        mine, ids = ids[:count], ids[count:]
        if len(mine) != count:
            raise BadPod(f"{AWS_NEURON_IDS} has fewer IDs than the containers ask for")
        cores = mask(
            c for i in mine for c in (shape.cores_of(i) if resource.whole_devices else [i])
        )
        out.append(ContainerAllocation(req.container, placement_of(shape, resource, cores)))
    if ids:
        raise BadPod(f"{AWS_NEURON_IDS} has more IDs than the containers ask for")
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


def parse_id_list(text: str) -> list[int]:
    """Parse "0,1,2" (as in AWS_NEURON_IDS); also accepts ranges "0-3" written by hand."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = (int(x) for x in part.split("-", 1))
            if hi < lo:
                raise ValueError(f"range {part!r} runs backwards")
            out.extend(range(lo, hi + 1))
        else:
            out.append(int(part))
    return out
