"""The outcome check of bench_scale.py's DRA run, read back from the claims' allocation results
(what the default scheduler wrote): every bound pod's claim is allocated, from its own node's
pool, with what its template asked (n whole devices, connected ones a set topology.py accepts;
or one core set of n contiguous cores that allocator.py would also hand out), and no core is
held twice on a node, whether through a whole device, a core set or a device set. Pure."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from neuron_k8s.allocator import Request, Resource, candidates, mask
from neuron_k8s.dra.devices import DEFAULT_DRIVER, device_index
from neuron_k8s.dra.devicesets import device_set_of, is_device_set
from neuron_k8s.dra.partitions import core_set_of
from neuron_k8s.topology import Shape, shape_for

CORE, DEVICE = Resource.NEURONCORE.value, Resource.NEURON.value


def cores_of(shape: Shape, name: str) -> tuple[bool, range]:
    """(whole device?, its cores) of a device name the driver publishes; ValueError for a name
    it does not, or one beyond the node."""
    if is_device_set(name):
        cores, whole = device_set_of(name).cores(shape), False
    elif name.startswith("neurondevice"):
        index = device_index(name)
        if index >= shape.devices:
            raise ValueError(f"{name} is beyond the node's {shape.devices} devices")
        cores, whole = shape.cores_of(index), True
    else:
        cores, whole = core_set_of(name).cores, False
    if not cores or cores.stop > shape.cores:
        raise ValueError(f"{name} is beyond the node's {shape.cores} cores")
    return whole, cores


def _claim_of(pod: Mapping[str, Any], claims: Mapping[str, Mapping[str, Any]]) -> Any:
    statuses = (pod.get("status") or {}).get("resourceClaimStatuses") or []
    names = [s.get("resourceClaimName") for s in statuses]
    return claims.get(names[0]) if len(names) == 1 and names[0] else None


def _held(
    claim: Mapping[str, Any], node_types: Mapping[str, str]
) -> tuple[str, list[tuple[str, bool, range]], list[str]]:
    """(node, [(device, whole?, cores)], problems) of one allocated claim."""
    name = claim["metadata"]["name"]
    results = ((claim.get("status") or {}).get("allocation") or {}).get("devices", {})
    results = results.get("results") or []
    pools = {r.get("pool") for r in results}
    if len(pools) != 1:
        return "", [], [f"claim {name}: devices from pools {sorted(map(str, pools))}"]
    (node,) = pools
    if node not in node_types:
        return "", [], [f"claim {name}: pool {node} is no node of the run"]
    shape, held, wrong = shape_for(node_types[node]), [], []
    for r in results:
        if r.get("driver") != DEFAULT_DRIVER:
            wrong.append(f"claim {name}: device {r.get('device')} of driver {r.get('driver')}")
            continue
        try:
            whole, cores = cores_of(shape, str(r.get("device")))
        except ValueError as err:
            wrong.append(f"claim {name}: {err}")
            continue
        held.append((str(r["device"]), whole, cores))
    return node, held, wrong


def _asked_problem(
    shape: Shape, kind: tuple[str, int], held: list[tuple[str, bool, range]]
) -> str | None:
    resource, count = kind
    names = [d for d, _, _ in held]
    cores = mask(c for _, _, cs in held for c in cs)
    if resource == DEVICE:
        if len(held) != count or not all(whole for _, whole, _ in held):
            return f"asked for {count} whole devices, got {names}"
        if cores not in candidates(shape, Request(Resource.NEURON, count)):
            return f"devices {names} are no connected set of {count} on {shape.name}"
        return None
    if len(held) != 1 or held[0][1] or len(held[0][2]) != count:
        return f"asked for one set of {count} cores, got {names}"
    if cores not in candidates(shape, Request(Resource.NEURONCORE, count)):
        return f"core set {names[0]} is not one the extender would hand out on {shape.name}"
    return None


def dra_problems(
    node_types: Mapping[str, str],
    kinds: Mapping[str, tuple[str, int]],
    pods: Iterable[Mapping[str, Any]],
    claims: Iterable[Mapping[str, Any]],
) -> tuple[int, list[str]]:
    """(bound pods checked, what is wrong). `kinds`: template name -> (resource, count) it asks
    for. Every allocated claim counts towards the cores held, bound pod or not."""
    by_name = {c["metadata"]["name"]: c for c in claims}
    wrong: list[str] = []
    held_by_claim: dict[str, tuple[str, list[tuple[str, bool, range]]]] = {}
    owner: dict[tuple[str, int], str] = {}
    for name, claim in sorted(by_name.items()):
        if not (claim.get("status") or {}).get("allocation"):
            continue
        node, held, problems = _held(claim, node_types)
        wrong += problems
        held_by_claim[name] = (node, held)
        for device, _, cores in held:
            for core in cores:
                other = owner.setdefault((node, core), f"{name}/{device}")
                if other != f"{name}/{device}":
                    wrong.append(f"core {core} on {node} is held by {other} and {name}/{device}")
    checked = 0
    for pod in pods:
        bound = (pod.get("spec") or {}).get("nodeName")
        if not bound:
            continue
        checked += 1
        pod_name = pod["metadata"]["name"]
        claim = _claim_of(pod, by_name)
        if claim is None or claim["metadata"]["name"] not in held_by_claim:
            wrong.append(f"{pod_name}: bound to {bound} with no allocated claim")
            continue
        where, held = held_by_claim[claim["metadata"]["name"]]
        if where != bound:
            wrong.append(f"{pod_name}: bound to {bound} but its claim's devices are on {where}")
            continue
        template = ((pod["spec"].get("resourceClaims") or [{}])[0]).get(
            "resourceClaimTemplateName", ""
        )
        if template not in kinds:
            wrong.append(f"{pod_name}: template {template!r} is not one of the run's")
            continue
        problem = _asked_problem(shape_for(node_types[bound]), kinds[template], held)
        if problem:
            wrong.append(f"{pod_name}: {problem}")
    return checked, wrong
