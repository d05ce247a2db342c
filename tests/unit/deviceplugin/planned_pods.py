"""Pods planned by an extender stand-in on one inf2.24xlarge node, for the tests that drive the
plugin through the kubelet's admission (dp_harness.Admission) and the API stand-in; the `node`
and `pr` fixtures are in conftest.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from dp_harness import FakeApi, make_pod, wait_until
from neuron_k8s.allocator import Resource, mask, placement_of
from neuron_k8s.deviceplugin.plugin import Plugin
from neuron_k8s.pods import (
    ALLOCATION,
    NEURON_ALLOCATED,
    ContainerAllocation,
    allocation_annotations,
)
from neuron_k8s.topology import shape_for

NODE = "node-a"
TYPE = "inf2.24xlarge"  # 6 devices x 2 cores
SHAPE = shape_for(TYPE)
StartPlugin = Callable[..., Plugin]


def plan(*containers: tuple[str, Resource, list[int]], at: int = 1) -> dict[str, str]:
    """The extender's bind annotations for containers (name, resource, IDs)."""
    allocations = []
    for name, resource, chosen in containers:
        cores = mask(
            c for i in chosen for c in (SHAPE.cores_of(i) if resource.whole_devices else [i])
        )
        allocations.append(ContainerAllocation(name, placement_of(SHAPE, resource, cores)))
    return allocation_annotations(NODE, allocations, at)


def recorded(api: FakeApi, name: str) -> dict[str, list[int]]:
    """container -> cores, as the pod's record says."""
    detail = json.loads(api.pod("default", name)["metadata"]["annotations"][ALLOCATION])
    return {c["name"]: c["cores"] for c in detail["containers"]}


def marked(api: FakeApi, name: str) -> bool:
    return api.pod("default", name)["metadata"]["annotations"].get(NEURON_ALLOCATED) == "true"


def recorded_count(plugin: Plugin, outcome: str) -> float:
    value = plugin.metrics.registry.get_sample_value(
        "neuron_device_plugin_pods_recorded_total", {"outcome": outcome}
    )
    return value or 0.0


def cores(env: str) -> list[int]:
    return [int(c) for c in env.split(",")]


def put(api: FakeApi, plugin: Plugin, pod: dict[str, Any]) -> None:
    """Create the pod and wait until the plugin's watch shows it."""
    api.put_pod(pod)
    uid = pod["metadata"]["uid"]
    wait_until(lambda: plugin.pods is not None and uid in plugin.pods.pods(), 5, "pod seen")


def put_planned(
    api: FakeApi, plugin: Plugin, name: str, resource: Resource, ids: list[int], at: int = 1
) -> None:
    """A pod whose one container, m, the extender planned `ids` of `resource` for."""
    notes = plan(("m", resource, ids), at=at)
    put(api, plugin, make_pod(name, NODE, [("m", resource.value, len(ids))], notes))
