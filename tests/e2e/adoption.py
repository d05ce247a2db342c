"""What an adoption test compares before and after Helm takes objects over (test_95 from AWS's
manifests, test_96 from AWS's chart): the objects' uids, and what running Neuron pods hold."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import ALLOCATION, NEURON, NEURONCORE, Cluster, Pods, contiguous

AWS_NEURON_IDS = "AWS_NEURON_IDS"
NAMESPACE = "kube-system"  # where AWS's objects live


@dataclass
class Steps:
    """What the steps of one adoption share: the working directory, the environment of the
    guide's commands, and what was seen before, to compare with after."""

    cluster: Cluster
    workdir: Path
    env: dict[str, str]
    pods: Pods
    done: list[str] = field(default_factory=list)
    uids: dict[tuple[str, str], str] = field(default_factory=dict)
    held: dict[str, dict[str, Any]] = field(default_factory=dict)

    def needs(self, step: str) -> None:
        if step not in self.done:
            pytest.fail(f"needs the step {step!r}, which did not pass")

    def object_uids(self, objects: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
        return object_uids(self.cluster, objects, NAMESPACE)


def object_uids(
    cluster: Cluster, objects: list[tuple[str, str]], namespace: str
) -> dict[tuple[str, str], str]:
    """Each object's uid, "" for one that does not exist."""
    uids = {}
    for kind, name in objects:
        out = cluster.kubectl(
            "get", kind, name, "-n", namespace, "-o", "jsonpath={.metadata.uid}", check=False
        )
        uids[(kind, name)] = out.stdout if out.returncode == 0 else ""
    return uids


def holding(pods: Pods, name: str) -> dict[str, Any]:
    """What a running pod holds and shows: equal before and after means untouched."""
    pod = pods.get(name)
    return {
        "uid": pod.metadata.uid,
        "node": pod.spec.node_name,
        "restarts": sum(s.restart_count for s in pod.status.container_statuses or []),
        "annotations": {k: pod.metadata.annotations.get(k) for k in (AWS_NEURON_IDS, ALLOCATION)},
        "cores": pods.cores(name),
    }


def start_neuron_pods(pods: Pods) -> dict[str, dict[str, Any]]:
    """Two pods that hold Neuron cores and a device before the adoption, and what they hold."""
    pods.create("before-cores", [{NEURONCORE: 3}])
    pods.create("before-device", [{NEURON: 1}])
    held = {}
    for name in ("before-cores", "before-device"):
        pods.wait_running(name, 180)
        held[name] = holding(pods, name)
        assert contiguous(held[name]["cores"]), held[name]
        assert held[name]["annotations"][AWS_NEURON_IDS], held[name]
    return held


def place_around(pods: Pods, held: dict[str, dict[str, Any]]) -> None:
    """A new pod on the node of `before-cores` gets contiguous cores that pod does not hold."""
    node = held["before-cores"]["node"]
    taken = set(held["before-cores"]["cores"])
    pods.create("after-cores", [{NEURONCORE: 2}], node=node)
    pods.wait_running("after-cores", 180)
    got = pods.cores("after-cores")
    assert contiguous(got) and not taken & set(got), (taken, got)
