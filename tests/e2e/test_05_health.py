"""An unhealthy fake device lowers allocatable, new pods avoid it, and recovery restores it."""

from collections.abc import Iterator

import pytest
from conftest import HEALTH_FILE, NEURON, Cluster, Pods, devices_of, wait_for

INF2 = "inf2.48xlarge"
UNHEALTHY_ANNOTATION = "neuron.k8s.local/unhealthy-devices"


@pytest.fixture
def inf2(cluster: Cluster, node_host) -> Iterator[tuple[str, object]]:
    node = cluster.node_of_type(INF2)
    host = node_host(node)
    yield node, host
    host.run(f"rm -f {HEALTH_FILE}")
    wait_for("allocatable restored", lambda: cluster.allocatable(node) == (12, 24), 60)


def test_unhealthy_device_lowers_allocatable_and_new_pods_avoid_it(
    cluster: Cluster, pods: Pods, inf2
) -> None:
    node, host = inf2
    assert cluster.allocatable(node) == (12, 24)
    host.check_output(f"mkdir -p $(dirname {HEALTH_FILE}) && echo 3 > {HEALTH_FILE}")
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
    pods.delete("avoid")


def test_device_healthy_again_restores_allocatable(cluster: Cluster, inf2) -> None:
    node, host = inf2
    host.check_output(f"mkdir -p $(dirname {HEALTH_FILE}) && echo 5 > {HEALTH_FILE}")
    wait_for("allocatable to drop", lambda: cluster.allocatable(node) == (11, 22), 60)
    host.check_output(f"truncate -s 0 {HEALTH_FILE}")
    wait_for("allocatable to come back", lambda: cluster.allocatable(node) == (12, 24), 60)
