"""The DRA driver in real mode on kind, over the imitation of the Neuron driver
(cluster/neurondriver.py, docs/real-mode.md): a claim's container gets exactly the device
nodes of its allocation (the CDI spec's deviceNodes), and a Neuron hardware error in the
kernel messages taints its device and sets the node condition NeuronHealth."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from conftest import Cluster, devices_of, restart_component, wait_for
from dra_claims import Claims, claims_on, dra_node, tainted
from realnodes import NeuronDriver, node_condition, node_event_reasons

TRN1 = "trn1.32xlarge"
TAINT = "neuron.aws.com/unhealthy"


@pytest.fixture
def trn1(cluster: Cluster) -> Iterator[tuple[Claims, NeuronDriver]]:
    node = dra_node(cluster, TRN1)
    driver = NeuronDriver(node)
    with claims_on(cluster, node) as claims:
        yield claims, driver
    driver.reset()
    restart_component(cluster, "dra", node=node)
    wait_for("every taint gone", lambda: not tainted(cluster, node), 90)


@pytest.mark.matrix
def test_a_claim_for_two_devices_gives_its_container_exactly_their_device_nodes(
    trn1: tuple[Claims, NeuronDriver],
) -> None:
    claims, _ = trn1
    claims.template("two", 2)
    claims.pod("two", "two")
    claims.running("two")
    assert claims.pods.device_nodes("two") == claims.sees_its_claim("two")


def test_a_device_set_claims_container_holds_exactly_the_device_nodes_of_its_devices(
    trn1: tuple[Claims, NeuronDriver],
) -> None:
    claims, _ = trn1
    claims.device_set_template("four", 4)
    claims.pod("four", "four")
    claims.running("four")
    cores = claims.sees_its_cores("four")
    assert claims.pods.device_nodes("four") == devices_of(cores, claims.cores_per_device)


def test_a_core_set_claims_container_holds_the_device_nodes_its_cores_span(
    trn1: tuple[Claims, NeuronDriver],
) -> None:
    claims, _ = trn1
    claims.core_template("across", 2, first=1)  # cores 1 and 2: devices 0 and 1
    claims.pod("across", "across")
    claims.running("across")
    assert claims.sees_its_cores("across") == [1, 2]
    assert claims.pods.device_nodes("across") == [0, 1]


def test_a_hardware_error_taints_its_device_and_sets_the_node_condition(
    cluster: Cluster, trn1: tuple[Claims, NeuronDriver]
) -> None:
    claims, driver = trn1
    since = time.time()
    driver.hardware_error(6, "NC_UNCORRECTABLE_ERROR")
    seen = wait_for("device 6 tainted", lambda: tainted(cluster, claims.node) or None, 60)
    assert [t["key"] for t in seen["neurondevice6"]] == [TAINT]
    assert "neurondevice5" not in seen
    condition = wait_for(
        "NeuronHealth True",
        lambda: node_condition(cluster, claims.node, "NeuronHealth", "True"),
        60,
    )
    assert "NC_UNCORRECTABLE_ERROR" in condition.message
    assert "NeuronHardwareError" in wait_for(
        "the Node's Event", lambda: node_event_reasons(cluster, claims.node, since), 60
    )
