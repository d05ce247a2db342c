"""Every Neuron worker advertises the devices and cores of its instance type, found in real
mode from the driver's footprint (the harness's imitation, docs/real-mode.md)."""

import pytest
from conftest import (
    INSTANCE_TYPE,
    NAMESPACE,
    NEURON,
    NEURONCORE,
    RELEASE,
    SHAPES,
    Cluster,
    needs_kind,
    wait_for,
)

pytestmark = pytest.mark.matrix


def test_each_worker_advertises_the_shape_of_its_instance_type(cluster: Cluster) -> None:
    needs_kind()
    nodes = cluster.neuron_nodes()
    seen = {n.metadata.labels.get(INSTANCE_TYPE) for n in nodes.values()}
    assert seen == set(SHAPES), f"Neuron nodes by type: {seen}"
    for name, node in nodes.items():
        devices, per_device = SHAPES[node.metadata.labels[INSTANCE_TYPE]]
        for field in ("capacity", "allocatable"):
            values = getattr(node.status, field)
            assert int(values[NEURON]) == devices, f"{name} {field} {NEURON}"
            assert int(values[NEURONCORE]) == devices * per_device, f"{name} {field} {NEURONCORE}"


def test_nodes_without_a_neuron_instance_type_advertise_nothing(kube_cluster) -> None:
    for node in kube_cluster.kubectl("get nodes"):
        if INSTANCE_TYPE not in node["metadata"]["labels"]:
            assert int(node["status"].get("capacity", {}).get(NEURONCORE, "0")) == 0


@pytest.mark.parametrize("component", ["device-plugin", "dra"])
def test_the_node_components_run_in_real_mode_over_the_hosts_dev(
    cluster: Cluster, component: str
) -> None:
    needs_kind()
    ds = cluster.apps.read_namespaced_daemon_set(f"{RELEASE}-{component}", NAMESPACE)
    container = ds.spec.template.spec.containers[0]
    env = {e.name: e.value for e in container.env or []}
    assert not [n for n in env if "_FAKE_" in n], env
    mounts = {m.mount_path: m.read_only for m in container.volume_mounts or []}
    assert mounts.get("/host/dev") is True, mounts


def test_every_neuron_node_has_the_neuron_health_condition_written_by_its_component(
    cluster: Cluster,
) -> None:
    """Their status writes pass the chart's node-health admission policy on this release."""
    needs_kind()
    labelled = [n.metadata.name for n in cluster.core.list_node(label_selector=INSTANCE_TYPE).items]
    assert labelled

    def reported() -> list[str]:
        out = []
        for name in labelled:
            conditions = cluster.core.read_node(name).status.conditions or []
            if any(c.type == "NeuronHealth" and c.status == "False" for c in conditions):
                out.append(name)
        return out if len(out) == len(labelled) else []

    wait_for("NeuronHealth False on every Neuron node", reported, 60)
