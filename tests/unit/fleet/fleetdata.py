"""Plain-dict API objects for the fleet tests: nodes, pods, ResourceClaims and ResourceSlices as
the API server returns them. Records and slices are written by the project's own writers, so
that the tests read what the plugin, the extender and the DRA driver really write."""

from __future__ import annotations

import json
from typing import Any

from neuron_k8s.allocator import Resource, mask, placement_of
from neuron_k8s.dra import devices as dra_devices
from neuron_k8s.dra import partitions
from neuron_k8s.pods import ContainerAllocation, allocation_annotations
from neuron_k8s.topology import shape_for

DRIVER = "neuron.aws.com"
VERSIONS = dra_devices.Versions("0.1.0", "fake")
CREATED = "2026-12-06T15:00:00Z"


def dp_node(name: str, instance_type: str, **extra: Any) -> dict[str, Any]:
    """A device-plugin node advertising its instance type's devices and cores."""
    shape = shape_for(instance_type)
    capacity = {
        "aws.amazon.com/neuron": str(shape.devices),
        "aws.amazon.com/neuroncore": str(shape.cores),
        "cpu": "8",
    }
    node: dict[str, Any] = {
        "metadata": {
            "name": name,
            "labels": {"node.kubernetes.io/instance-type": instance_type},
            "annotations": {},
        },
        "status": {"capacity": capacity, "allocatable": dict(capacity), "conditions": []},
    }
    node.update(extra)
    return node


def dra_node(name: str, instance_type: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "labels": {
                "node.kubernetes.io/instance-type": instance_type,
                "neuron.k8s.local/dra": "true",
            },
        },
        "status": {"capacity": {"cpu": "8"}, "allocatable": {"cpu": "8"}},
    }


def plain_node(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {}}, "status": {"capacity": {"cpu": "4"}}}


def container(name: str, resource: str | None = None, count: int = 0) -> dict[str, Any]:
    limits = {resource: str(count)} if resource else {}
    return {"name": name, "image": "x", "resources": {"limits": limits}}


def pod(
    name: str,
    containers: list[dict[str, Any]],
    node: str = "",
    namespace: str = "team",
    phase: str = "Running",
    annotations: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{name}",
            "creationTimestamp": CREATED,
            "annotations": annotations or {},
        },
        "spec": {"nodeName": node, "containers": containers, **spec},
        "status": {"phase": phase},
    }


def recorded_pod(
    name: str, node: str, instance_type: str, sets: list[tuple[str, str, list[int]]], **kw: Any
) -> dict[str, Any]:
    """A pod bound to `node` with the record the extender writes: one (container, resource,
    cores) per container."""
    shape = shape_for(instance_type)
    allocations = [
        ContainerAllocation(c, placement_of(shape, Resource(r), mask(cores)))
        for c, r, cores in sets
    ]
    containers = [
        container(c, r, len(a.placement.ids))
        for (c, r, _), a in zip(sets, allocations, strict=True)
    ]
    return pod(
        name, containers, node, annotations=allocation_annotations(node, allocations, 1), **kw
    )


def garbage_pod(name: str, node: str) -> dict[str, Any]:
    p = pod(name, [container("c", "aws.amazon.com/neuroncore", 1)], node)
    p["metadata"]["annotations"]["neuron.k8s.local/allocation"] = "{not json"
    return p


def slices(node: str, instance_type: str, unhealthy: dict[int, str] | None = None) -> list[Any]:
    """The ResourceSlices the driver publishes with core partitions, unhealthy devices tainted."""
    shape = shape_for(instance_type)
    contents = partitions.contents(shape, node, VERSIONS, unhealthy or {}, effect="NoSchedule")
    return dra_devices.slices_of(node, DRIVER, contents, 1)


def claim(
    name: str, node: str, devices: list[str], pod_name: str | None, namespace: str = "team"
) -> dict[str, Any]:
    results = [{"request": "neurons", "driver": DRIVER, "pool": node, "device": d} for d in devices]
    reserved = [{"resource": "pods", "name": pod_name, "uid": f"uid-{pod_name}"}]
    return {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "devices": {"requests": [{"name": "neurons", "exactly": {"deviceClassName": DRIVER}}]}
        },
        "status": {
            "allocation": {"devices": {"results": results}},
            "reservedFor": reserved if pod_name else [],
        },
    }


def claim_pod(name: str, node: str, claim_name: str, namespace: str = "team") -> dict[str, Any]:
    """A pod whose container `app` uses the claim `claim_name` (made from a template)."""
    c = container("app")
    c["resources"]["claims"] = [{"name": "neuron"}]
    p = pod(
        name,
        [c, container("sidecar")],
        node,
        namespace,
        resourceClaims=[{"name": "neuron", "resourceClaimTemplateName": "t"}],
    )
    p["status"]["resourceClaimStatuses"] = [{"name": "neuron", "resourceClaimName": claim_name}]
    return p


def record_of(p: dict[str, Any]) -> dict[str, Any]:
    return json.loads(p["metadata"]["annotations"]["neuron.k8s.local/allocation"])
