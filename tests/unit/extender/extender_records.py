"""Pods carrying hand-written records, for the record tests and the fuzzers: any pod owner
can write the allocation annotation (docs/security.md), so these are what the extender must
survive and ignore."""

from __future__ import annotations

import json
from typing import Any

from extender_helpers import CORE, make_pod, running_pod

ALLOCATION = "neuron.k8s.local/allocation"


def with_cores(name: str, node: str, cores: Any, count: int = 2) -> dict[str, Any]:
    """A pod bound to `node`, asking for `count` cores, whose record gives it `cores` (any
    JSON value: a pod owner wrote it)."""
    pod = running_pod(name, node, [0, 1])
    pod["spec"]["containers"][0]["resources"] = {
        "requests": {CORE: str(count)},
        "limits": {CORE: str(count)},
    }
    pod["metadata"]["annotations"][ALLOCATION] = json.dumps(
        {
            "node": node,
            "containers": [{"name": "main", "resource": CORE, "ids": cores, "cores": cores,
                            "devices": [0]}],
        }
    )  # fmt: skip
    return pod


def unbound(pod: dict[str, Any]) -> dict[str, Any]:
    pod["spec"].pop("nodeName", None)
    pod["status"]["phase"] = "Pending"
    return pod


def job_with_init(name: str, node: str, phase: str) -> dict[str, Any]:
    """A Job's pod: an init container on core 0, then the app on cores 0,1 (it grows from the
    init container's core), recorded by the extender's bind."""
    from neuron_k8s.allocator import Placement, Resource
    from neuron_k8s.pods import ContainerAllocation, allocation_annotations

    pod = make_pod(name, [("main", {CORE: "2"})])
    pod["spec"]["initContainers"] = [
        {"name": "warmup", "resources": {"requests": {CORE: "1"}, "limits": {CORE: "1"}}}
    ]
    res = Resource(CORE)
    notes = allocation_annotations(
        node,
        [
            ContainerAllocation("warmup", Placement(res, (0,), (0,), (0,))),
            ContainerAllocation("main", Placement(res, (0, 1), (0, 1), (0,))),
        ],
        1,
    )
    pod["metadata"]["annotations"].update(notes)
    pod["spec"]["nodeName"] = node
    pod["status"] = {
        "phase": phase,
        "initContainerStatuses": [
            {"name": "warmup", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
        ],
    }
    return pod
