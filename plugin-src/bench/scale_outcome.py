"""The outcome check of bench_scale.py: what the extender recorded on the pods it bound is
true. Every bound pod has an allocation annotation for the node it is bound to; each
container's set is one the instance type's rule allows for what it asked (topology.py through
allocator.candidates); no core is held twice on a node (init containers' cores, which the
containers after them reuse, aside)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from neuron_k8s.allocator import Request, Stage, candidates, mask
from neuron_k8s.pods import BadPod, container_requests, read_allocation
from neuron_k8s.topology import shape_for


def problems(
    node_types: Mapping[str, str], pods: Iterable[Mapping[str, Any]]
) -> tuple[int, list[str]]:
    """(pods checked, what is wrong); a pod not bound yet is not checked."""
    held: dict[str, int] = {}
    checked, wrong = 0, []
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if not node:
            continue
        checked += 1
        name = pod["metadata"]["name"]
        try:
            recorded = read_allocation(pod)
            asked = {c.container: c.request for c in container_requests(pod)}
        except BadPod as err:
            wrong.append(f"{name}: {err}")
            continue
        if recorded is None:
            wrong.append(f"{name}: bound to {node} with no allocation annotation")
            continue
        where, allocations = recorded
        if where != node:
            wrong.append(f"{name}: bound to {node} but its annotation says {where}")
            continue
        shape = shape_for(node_types[node])
        if {a.container for a in allocations} != set(asked):
            wrong.append(f"{name}: annotation covers {sorted(a.container for a in allocations)}")
            continue
        for a in allocations:
            request = asked[a.container]
            cores = mask(a.placement.cores)
            valid = candidates(shape, Request(request.resource, request.count))
            if cores not in valid:
                wrong.append(
                    f"{name}/{a.container}: cores {list(a.placement.cores)} are no valid set "
                    f"for {request.count} x {request.resource.value} on {node_types[node]}"
                )
            if request.stage is Stage.INIT:
                continue  # an init container's cores go on to the containers after it
            if held.get(node, 0) & cores:
                twice = sorted(i for i in a.placement.cores if held[node] >> i & 1)
                wrong.append(f"{name}/{a.container}: cores {twice} on {node} are held twice")
            held[node] = held.get(node, 0) | cores
    return checked, wrong
