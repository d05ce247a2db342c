"""Device health on the DRA path (docs/dra.md, "Device health"), on the release's default
gates: a device the driver finds unhealthy stays in its ResourceSlice with the taint
neuron.aws.com/unhealthy (NoSchedule, KEP-5055), so no new claim gets it, nor a core set or
device set on it; the kubelet shows its health in the status of the pod that holds it
(allocatedResourcesStatus, KEP-4680); and the taint goes when the device recovers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import HEALTH_FILE, Cluster, wait_for
from dra_claims import Claims, claims_on, dra_node, node_slices

TRN1 = "trn1.32xlarge"
TAINT = "neuron.aws.com/unhealthy"
REFUSED = "cannot allocate all claims"


@pytest.fixture
def trn1(cluster: Cluster, node_host: Any) -> Iterator[tuple[Claims, Any]]:
    node = dra_node(cluster, TRN1)
    host = node_host(node)
    with claims_on(cluster, node) as claims:
        yield claims, host
    host.run(f"rm -f {HEALTH_FILE}")
    wait_for("every taint gone", lambda: not tainted(cluster, node), 60)


def tainted(cluster: Cluster, node: str) -> dict[str, list[dict[str, Any]]]:
    """The node's published devices that carry a taint, with their taints."""
    return {
        d["name"]: d["taints"]
        for s in node_slices(cluster, node)
        for d in s["spec"].get("devices") or []
        if d.get("taints")
    }


def mark_unhealthy(host: Any, device: int) -> None:
    host.check_output(f"mkdir -p $(dirname {HEALTH_FILE}) && echo {device} > {HEALTH_FILE}")


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
    trn1: tuple[Claims, Any],
) -> None:
    claims, host = trn1
    mark_unhealthy(host, 5)
    seen = wait_for("device 5 tainted", lambda: tainted(claims.cluster, claims.node) or None, 60)
    assert [t["key"] for t in seen["neurondevice5"]] == [TAINT]
    assert seen["neurondevice5"][0]["effect"] == "NoSchedule"
    # Device 5 holds cores 10 and 11; its aligned blocks are 4-7, 0-7 and 0-15.
    assert {"neuroncores10-11", "neuroncores11-11", "neurondevices4-7", "neurondevices0-15"} <= set(
        seen
    )
    assert not [n for n in seen if n in ("neurondevice4", "neuroncores12-13", "neurondevices8-11")]
    host.check_output(f"truncate -s 0 {HEALTH_FILE}")
    wait_for("the taints gone", lambda: not tainted(claims.cluster, claims.node), 60)


def test_no_new_claim_gets_an_unhealthy_device(trn1: tuple[Claims, Any]) -> None:
    claims, host = trn1
    mark_unhealthy(host, 5)
    wait_for("device 5 tainted", lambda: "neurondevice5" in tainted(claims.cluster, claims.node))
    claims.device_template("five", 5)
    claims.pod("five", "five")
    assert REFUSED in claims.unschedulable("five")
    host.check_output(f"truncate -s 0 {HEALTH_FILE}")
    claims.running("five")
    assert claims.sees_its_claim("five") == [5]


def test_the_pod_holding_a_device_that_turns_unhealthy_says_so_in_its_status(
    trn1: tuple[Claims, Any],
) -> None:
    claims, host = trn1
    claims.device_template("five", 5)
    claims.pod("five", "five")
    claims.running("five")
    wait_for("the device reported healthy", lambda: resource_health(claims, "five") == ["Healthy"])
    mark_unhealthy(host, 5)
    wait_for(
        "the device reported unhealthy", lambda: "Unhealthy" in resource_health(claims, "five")
    )
    # The pod keeps running on it: NoSchedule keeps new claims off, it evicts nobody.
    pod = claims.cluster.core.read_namespaced_pod("five", claims.namespace)
    assert pod.status.phase == "Running"
    host.check_output(f"truncate -s 0 {HEALTH_FILE}")
    wait_for("healthy again", lambda: resource_health(claims, "five") == ["Healthy"])
