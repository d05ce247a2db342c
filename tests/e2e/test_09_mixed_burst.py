"""Pods of both resources and of several sizes created in the same second onto one inf2 node:
the kubelet admits them in its own order, and every running container's cores are the IDs the
kubelet assigned it (PodResources) and the ones its pod's record names."""

import json
from collections import defaultdict

import pytest
from conftest import (
    NAMESPACE,
    NEURON,
    NEURONCORE,
    Cluster,
    Pods,
    contiguous,
    needs_kind,
    wait_for,
)

INF2 = "inf2.48xlarge"
CORES_PER_DEVICE = 2
# 21 of the node's 24 cores: all fit, in sets of every size and both resources.
BURST = [{NEURON: 1}] * 2 + [{NEURON: 2}] * 2 + [{NEURONCORE: 1}] * 3 + [{NEURONCORE: 2}] * 3

LIST_POD_RESOURCES = """
import json
from neuron_k8s.deviceplugin.podresources import PodResourcesClient
snapshot = PodResourcesClient("/var/lib/kubelet/pod-resources/kubelet.sock").list()
print(json.dumps([
    [list(key), {r.value: list(ids) for r, ids in by_res.items()}]
    for key, by_res in snapshot.containers.items()
]))
"""


def pod_resources(cluster: Cluster, node: str) -> dict[tuple[str, str, str], dict[str, list]]:
    """The kubelet's own record of each container's IDs on `node`, read by the plugin's client
    inside the plugin pod there (which mounts the PodResources socket)."""
    plugins = cluster.core.list_namespaced_pod(
        NAMESPACE,
        label_selector="app.kubernetes.io/component=device-plugin",
        field_selector=f"spec.nodeName={node}",
    ).items
    assert plugins, f"no device plugin pod on {node}"
    done = cluster.kubectl(
        "exec", "-n", NAMESPACE, plugins[0].metadata.name, "--", "python3", "-c", LIST_POD_RESOURCES
    )
    return {tuple(k): v for k, v in json.loads(done.stdout)}


def as_cores(resource: str, ids: list[int]) -> list[int]:
    if resource == NEURONCORE:
        return sorted(ids)
    return sorted(c for d in ids for c in range(d * CORES_PER_DEVICE, (d + 1) * CORES_PER_DEVICE))


def test_a_mixed_burst_on_one_node_gets_the_kubelets_ids_in_every_record(
    cluster: Cluster, pods: Pods
) -> None:
    needs_kind()
    node = cluster.node_of_type(INF2)
    names = [pods.create(f"mix-{i:02d}", [want], node=node) for i, want in enumerate(BURST)]

    def all_running() -> bool:
        phases = {n: pods.get(n).status.phase for n in names}
        failed = {n: p for n, p in phases.items() if p not in ("Running", "Pending")}
        assert not failed, {n: f"{p}: {pods.get(n).status.message}" for n, p in failed.items()}
        return all(p == "Running" for p in phases.values())

    try:
        wait_for("every pod of the burst running", all_running, 180, 2)
    except pytest.fail.Exception:
        waiting = [n for n in names if pods.get(n).status.phase == "Pending"]
        pytest.fail(f"pods still waiting: { ({n: pods.scheduling_failure(n) for n in waiting}) }")

    for name in names:
        pods.wait_recorded(name)
    kubelet = pod_resources(cluster, node)
    held: dict[int, str] = {}
    for name, want in zip(names, BURST, strict=True):
        ((resource, count),) = want.items()
        got = pods.cores(name)
        assert contiguous(got) and len(got) == count * (
            CORES_PER_DEVICE if resource == NEURON else 1
        )
        recorded = {c["name"]: c for c in pods.allocation(name)["containers"]}
        assert recorded["c0"]["cores"] == got, f"{name}: record {recorded}, env {got}"
        assigned = kubelet[(pods.namespace, name, "c0")]
        assert list(assigned) == [resource], f"{name}: the kubelet lists {assigned}"
        assert as_cores(resource, [int(i) for i in assigned[resource]]) == got, name
        assert pods.get(name).metadata.annotations["NEURON_ALLOCATED"] == "true"
        for c in got:
            assert c not in held, f"core {c} held by {held[c]} and {name}"
            held[c] = name
    by_resource = defaultdict(int)
    for want in BURST:
        for r, n in want.items():
            by_resource[r] += n
    assert len(held) == by_resource[NEURON] * CORES_PER_DEVICE + by_resource[NEURONCORE]
