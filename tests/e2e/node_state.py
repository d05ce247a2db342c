"""What the API says a Neuron node holds, for tests/e2e/test_31_metrics_prometheus.py: the cores
of every pod record on a device-plugin node, of every reserved claim on a DRA node, and the
devices out of service; and, from them, the free runs and sets the topology allows, worked out
here by brute force rather than by the code under test."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from conftest import ALLOCATION, INSTANCE_TYPE, SHAPES, Cluster, is_dra_node
from dra_claims import DRIVER, GROUP, VERSION, cores_of, tainted
from kubernetes import client

UNHEALTHY_DEVICES = "neuron.k8s.local/unhealthy-devices"
ALIGNED = {"trn1.32xlarge"}  # conftest.SHAPES: the rest are rings


@dataclass(frozen=True)
class NodeState:
    devices: int
    cores_per_device: int
    aligned: bool
    held: frozenset[int]  # cores
    sick: frozenset[int]  # devices

    def free(self) -> list[bool]:
        return [
            c not in self.held and c // self.cores_per_device not in self.sick
            for c in range(self.devices * self.cores_per_device)
        ]

    def free_devices(self) -> list[bool]:
        held = {c // self.cores_per_device for c in self.held}
        return [d not in held and d not in self.sick for d in range(self.devices)]

    def sizes(self) -> list[int]:
        if self.aligned:
            return [s for s in (1, 4, 8, 16) if s <= self.devices]
        return list(range(1, self.devices + 1))

    def placements(self, size: int) -> int:
        free = self.free_devices()
        starts = range(0, self.devices, size) if self.aligned else range(self.devices - size + 1)
        return sum(1 for s in starts if all(free[s : s + size]))


def longest(flags: list[bool]) -> int:
    best = run = 0
    for f in flags:
        run = run + 1 if f else 0
        best = max(best, run)
    return best


def node_state(cluster: Cluster, name: str) -> NodeState:
    node = cluster.core.read_node(name)
    instance_type = node.metadata.labels[INSTANCE_TYPE]
    devices, per_device = SHAPES[instance_type]
    held: set[int] = set()
    if is_dra_node(node):
        doc = client.CustomObjectsApi().list_cluster_custom_object(GROUP, VERSION, "resourceclaims")
        for claim in doc["items"]:
            status = claim.get("status") or {}
            results = ((status.get("allocation") or {}).get("devices") or {}).get("results") or []
            if status.get("reservedFor"):
                for r in results:
                    if r["driver"] == DRIVER and r["pool"] == name:
                        held.update(cores_of(r["device"], per_device))
        whole = (re.fullmatch(r"neurondevice(\d+)", d) for d in tainted(cluster, name))
        sick = {int(m.group(1)) for m in whole if m}
    else:
        selector = f"spec.nodeName={name}"
        for pod in cluster.core.list_pod_for_all_namespaces(field_selector=selector).items:
            raw = (pod.metadata.annotations or {}).get(ALLOCATION)
            if raw and pod.status.phase not in ("Succeeded", "Failed"):
                held.update(c for ct in json.loads(raw)["containers"] for c in ct["cores"])
        text = (node.metadata.annotations or {}).get(UNHEALTHY_DEVICES, "")
        sick = {int(d) for d in text.split(",") if d}
    return NodeState(
        devices, per_device, instance_type in ALIGNED, frozenset(held), frozenset(sick)
    )
