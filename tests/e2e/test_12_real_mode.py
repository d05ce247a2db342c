"""The device plugin in real mode on kind, over the imitation of the Neuron driver
(cluster/neurondriver.py, docs/real-mode.md): containers get exactly their devices' nodes, a
node without the driver advertises nothing and says so, a device missing at start keeps the
instance type's shape, and a Neuron hardware error in the kernel messages takes its device out
and sets the node condition NeuronHealth, for the rest of the boot."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from conftest import NEURON, NEURONCORE, Cluster, Pods, devices_of, restart_component, wait_for
from realnodes import NeuronDriver, node_condition, node_event_reasons

INF2, TRN1 = "inf2.48xlarge", "trn1.32xlarge"
COMPONENT = "device-plugin"
UNHEALTHY_ANNOTATION = "neuron.k8s.local/unhealthy-devices"
CONDITION = "NeuronHealth"


def capacity(cluster: Cluster, node: str) -> int:
    return int((cluster.core.read_node(node).status.capacity or {}).get(NEURON, "0"))


def unhealthy(cluster: Cluster, node: str) -> str:
    return (cluster.core.read_node(node).metadata.annotations or {}).get(UNHEALTHY_ANNOTATION, "")


@pytest.fixture
def trn1(cluster: Cluster) -> Iterator[tuple[str, NeuronDriver]]:
    """The trn1 worker's driver; afterwards a fresh boot's footprint (no device missing, no
    kernel message, no recorded hardware error) and a plugin that has read it."""
    node = cluster.node_of_type(TRN1)
    driver = NeuronDriver(node)
    yield node, driver
    driver.reset()
    restart_component(cluster, COMPONENT, node=node)
    wait_for("trn1 allocatable restored", lambda: cluster.allocatable(node) == (16, 32), 90)


@pytest.mark.matrix
def test_each_container_holds_exactly_the_device_nodes_of_its_devices(pods: Pods) -> None:
    pods.create("both", [{NEURON: 4}, {NEURONCORE: 3}], node_type=TRN1)
    pods.wait_running("both")
    for container in ("c0", "c1"):
        cores = pods.cores("both", container)
        assert pods.device_nodes("both", container) == devices_of(cores, 2), container


def test_a_node_without_the_driver_advertises_nothing_until_the_driver_appears(
    cluster: Cluster,
) -> None:
    node = cluster.node_of_type(INF2)
    driver = NeuronDriver(node)
    since = time.time()
    driver.unplant()
    try:
        restart_component(cluster, COMPONENT, node=node)
        wait_for("no Neuron devices advertised", lambda: cluster.allocatable(node) == (0, 0), 90)
        assert "NeuronDriverNotFound" in wait_for(
            "the Node's Event", lambda: node_event_reasons(cluster, node, since), 60
        )
    finally:
        driver.reset()
    # The driver loads later: the same plugin advertises the devices, no restart needed.
    wait_for("the devices once the driver is there", lambda: cluster.allocatable(node) == (12, 24))


def test_trn1_without_its_last_device_at_start_keeps_16_devices_and_the_aligned_rule(
    cluster: Cluster, pods: Pods, trn1: tuple[str, NeuronDriver]
) -> None:
    node, driver = trn1
    driver.remove(15)
    restart_component(cluster, COMPONENT, node=node)
    wait_for("device 15 unhealthy", lambda: cluster.allocatable(node) == (15, 30), 90)
    assert capacity(cluster, node) == 16
    assert unhealthy(cluster, node) == "15"
    # The ring rule over 15 devices would place three; trn1.32xlarge's aligned rule refuses it.
    pods.create("three", [{NEURON: 3}], node=node)
    pods.wait_unschedulable("three", "does not support requests for device: 3")


def test_a_hardware_error_takes_its_device_out_and_sets_the_node_condition(
    cluster: Cluster, pods: Pods, trn1: tuple[str, NeuronDriver]
) -> None:
    node, driver = trn1
    since = time.time()
    driver.hardware_error(3, "HBM_UNCORRECTABLE_ERROR")
    wait_for("device 3 unhealthy", lambda: unhealthy(cluster, node) == "3", 60)
    wait_for("allocatable without device 3", lambda: cluster.allocatable(node) == (15, 30), 60)
    condition = wait_for(
        "NeuronHealth True",
        lambda: node_condition(cluster, node, CONDITION, "True"),
        60,
    )
    assert condition.reason == "NeuronHardwareError"
    assert "HBM_UNCORRECTABLE_ERROR" in condition.message
    assert "NeuronHardwareError" in wait_for(
        "the Node's Event", lambda: node_event_reasons(cluster, node, since), 60
    )
    # Devices 0-3 are one aligned block of four: it is no longer offered.
    pods.create("four", [{NEURON: 4}], node=node)
    pods.wait_running("four")
    assert 3 not in devices_of(pods.cores("four"), 2)


def test_a_hardware_error_outlives_its_message_and_a_restart_within_the_boot(
    cluster: Cluster, trn1: tuple[str, NeuronDriver]
) -> None:
    node, driver = trn1
    driver.hardware_error(3, "SRAM_UNCORRECTABLE_ERROR")
    wait_for("device 3 unhealthy", lambda: unhealthy(cluster, node) == "3", 60)
    # The ring buffer wraps or the log rotates: the line is gone, the chip is not repaired.
    driver.clear_messages()
    restart_component(cluster, COMPONENT, node=node)
    # Nothing to wait for when nothing changes: the new plugin's health polls (every second)
    # and the kubelet's node status (every 10 s) get one full round.
    time.sleep(12)
    assert unhealthy(cluster, node) == "3"
    assert cluster.allocatable(node) == (15, 30)
    assert node_condition(cluster, node, CONDITION, "True")


def test_forgetting_a_repaired_device_clears_it_and_the_node_condition(
    cluster: Cluster, trn1: tuple[str, NeuronDriver]
) -> None:
    node, driver = trn1
    driver.hardware_error(7, "DMA_ERROR")
    wait_for("device 7 unhealthy", lambda: unhealthy(cluster, node) == "7", 60)
    # What docs/real-mode.md tells the operator after a repair (a reboot does the same).
    driver.clear_messages()
    driver.forget_errors()
    restart_component(cluster, COMPONENT, node=node)
    wait_for("device 7 healthy", lambda: cluster.allocatable(node) == (16, 32), 60)
    wait_for(
        "NeuronHealth False",
        lambda: node_condition(cluster, node, CONDITION, "False"),
        60,
    )
