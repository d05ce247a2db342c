"""Every Neuron worker advertises the devices and cores of its instance type."""

import pytest
from conftest import FAKE_SHAPES, INSTANCE_TYPE, NEURON, NEURONCORE, Cluster, needs_kind

pytestmark = pytest.mark.matrix


def test_each_worker_advertises_the_fake_shape_of_its_instance_type(cluster: Cluster) -> None:
    needs_kind()
    nodes = cluster.neuron_nodes()
    seen = {n.metadata.labels.get(INSTANCE_TYPE) for n in nodes.values()}
    assert seen == set(FAKE_SHAPES), f"Neuron nodes by type: {seen}"
    for name, node in nodes.items():
        devices, per_device = FAKE_SHAPES[node.metadata.labels[INSTANCE_TYPE]]
        for field in ("capacity", "allocatable"):
            values = getattr(node.status, field)
            assert int(values[NEURON]) == devices, f"{name} {field} {NEURON}"
            assert int(values[NEURONCORE]) == devices * per_device, f"{name} {field} {NEURONCORE}"


def test_nodes_without_a_neuron_instance_type_advertise_nothing(kube_cluster) -> None:
    for node in kube_cluster.kubectl("get nodes"):
        if INSTANCE_TYPE not in node["metadata"]["labels"]:
            assert int(node["status"].get("capacity", {}).get(NEURONCORE, "0")) == 0
