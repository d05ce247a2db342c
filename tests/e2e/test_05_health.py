"""A device whose device node disappears (the Neuron driver lost it) is unhealthy: allocatable
drops, new pods avoid it, and it is back when its device node is (docs/real-mode.md)."""

from collections.abc import Iterator

import pytest
from conftest import NEURON, Cluster, Pods, devices_of, wait_for
from realnodes import NeuronDriver

INF2 = "inf2.48xlarge"
UNHEALTHY_ANNOTATION = "neuron.k8s.local/unhealthy-devices"


@pytest.fixture
def inf2(cluster: Cluster) -> Iterator[tuple[str, NeuronDriver]]:
    node = cluster.node_of_type(INF2)
    driver = NeuronDriver(node)
    yield node, driver
    driver.reset()
    wait_for("allocatable restored", lambda: cluster.allocatable(node) == (12, 24), 60)


def test_a_device_without_its_device_node_lowers_allocatable_and_new_pods_avoid_it(
    cluster: Cluster, pods: Pods, inf2
) -> None:
    node, driver = inf2
    assert cluster.allocatable(node) == (12, 24)
    driver.remove(3)
    wait_for("allocatable to drop by device 3", lambda: cluster.allocatable(node) == (11, 22), 60)
    wait_for(
        "the plugin to publish device 3 as unhealthy",
        lambda: (
            (cluster.core.read_node(node).metadata.annotations or {}).get(UNHEALTHY_ANNOTATION)
            == "3"
        ),
        30,
    )
    # Devices 0-2 and 4-11 are left: eight contiguous devices can only be 4-11.
    pods.create("avoid", [{NEURON: 8}], node=node)
    pods.wait_running("avoid")
    assert devices_of(pods.cores("avoid"), 2) == list(range(4, 12))
    assert pods.device_nodes("avoid") == list(range(4, 12))
    pods.delete("avoid")


def test_a_device_node_back_restores_allocatable(cluster: Cluster, inf2) -> None:
    node, driver = inf2
    driver.remove(5)
    wait_for("allocatable to drop", lambda: cluster.allocatable(node) == (11, 22), 60)
    driver.restore(5)
    wait_for("allocatable to come back", lambda: cluster.allocatable(node) == (12, 24), 60)
