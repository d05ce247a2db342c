"""Device health on the DRA path (docs/dra.md, "Device health"), on the release's default
gates: a device the driver finds unhealthy (its device node gone, as when the Neuron driver
loses it) stays in its ResourceSlice with the taint
neuron.aws.com/unhealthy (NoSchedule, KEP-5055), so no new claim gets it, nor a core set or
device set on it; the kubelet shows its health in the status of the pod that holds it
(allocatedResourcesStatus, KEP-4680); and the taint goes when the device recovers."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from conftest import Cluster, wait_for
from dra_claims import Claims, claims_on, dra_node, tainted
from realnodes import NeuronDriver

TRN1 = "trn1.32xlarge"
TAINT = "neuron.aws.com/unhealthy"
REFUSED = "cannot allocate all claims"


@pytest.fixture
def trn1(cluster: Cluster) -> Iterator[tuple[Claims, NeuronDriver]]:
    node = dra_node(cluster, TRN1)
    driver = NeuronDriver(node)
    with claims_on(cluster, node) as claims:
        yield claims, driver
    driver.reset()
    wait_for("every taint gone", lambda: not tainted(cluster, node), 60)


def resource_health(claims: Claims, pod: str) -> list[str]:
    """The health the kubelet reports for the resources of the pod's container."""
    raw = claims.cluster.core.read_namespaced_pod(pod, claims.namespace, _preload_content=False)
    statuses = json.loads(raw.data)["status"].get("containerStatuses") or []
    return [
        r.get("health", "")
        for s in statuses
        for entry in s.get("allocatedResourcesStatus") or []
        for r in entry.get("resources") or []
    ]


def test_an_unhealthy_device_and_every_set_on_it_are_tainted_until_it_recovers(
    trn1: tuple[Claims, NeuronDriver],
) -> None:
    claims, driver = trn1
    driver.remove(5)
    seen = wait_for("device 5 tainted", lambda: tainted(claims.cluster, claims.node) or None, 60)
    assert [t["key"] for t in seen["neurondevice5"]] == [TAINT]
    assert seen["neurondevice5"][0]["effect"] == "NoSchedule"
    # Device 5 holds cores 10 and 11; its aligned blocks are 4-7, 0-7 and 0-15.
    assert {"neuroncores10-11", "neuroncores11-11", "neurondevices4-7", "neurondevices0-15"} <= set(
        seen
    )
    assert not [n for n in seen if n in ("neurondevice4", "neuroncores12-13", "neurondevices8-11")]
    driver.restore(5)
    wait_for("the taints gone", lambda: not tainted(claims.cluster, claims.node), 60)


def test_no_new_claim_gets_an_unhealthy_device(trn1: tuple[Claims, NeuronDriver]) -> None:
    claims, driver = trn1
    driver.remove(5)
    wait_for("device 5 tainted", lambda: "neurondevice5" in tainted(claims.cluster, claims.node))
    claims.device_template("five", 5)
    claims.pod("five", "five")
    assert REFUSED in claims.unschedulable("five")
    driver.restore(5)
    claims.running("five")
    assert claims.sees_its_claim("five") == [5]


def test_the_pod_holding_a_device_that_turns_unhealthy_says_so_in_its_status(
    trn1: tuple[Claims, NeuronDriver],
) -> None:
    claims, driver = trn1
    claims.device_template("five", 5)
    claims.pod("five", "five")
    claims.running("five")
    wait_for("the device reported healthy", lambda: resource_health(claims, "five") == ["Healthy"])
    driver.remove(5)
    wait_for(
        "the device reported unhealthy", lambda: "Unhealthy" in resource_health(claims, "five")
    )
    # The pod keeps running on it: NoSchedule keeps new claims off, it evicts nobody.
    pod = claims.cluster.core.read_namespaced_pod("five", claims.namespace)
    assert pod.status.phase == "Running"
    driver.restore(5)
    wait_for("healthy again", lambda: resource_health(claims, "five") == ["Healthy"])
