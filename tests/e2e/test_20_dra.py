"""The DRA driver on kind (docs/dra.md): a fake trn1.32xlarge worker labelled
neuron.k8s.local/dra=true runs the chart's neuron-dra-driver instead of the device plugin.
Claims are written as for AWS's driver (DeviceClass neuron.aws.com, matchAttribute on
resource.aws.com/devicegroup<N>_id); the default kube-scheduler allocates them and the kubelet
prepares them through the driver and CDI."""

from __future__ import annotations

import pytest
from conftest import NAMESPACE, RELEASE, Cluster, wait_for
from dra_claims import (
    GROUP_ATTRIBUTE,
    Claims,
    claims_fixture,
    dra_node,
    driver_pod,
    held_on,
    node_slices,
    whole_devices,
)
from kubernetes import client
from scriptpods import script_results

pytestmark = pytest.mark.matrix

TRN1 = "trn1.32xlarge"
HEALTH_PORT = 51515  # the chart's dra.healthPort
# Every address of the drivers' headless metrics Service, and what each /metrics says.
SCRAPE = r"""
import json, socket, sys, urllib.request
host, port = sys.argv[1], int(sys.argv[2])
for ip in sorted({a[4][0] for a in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)}):
    text = urllib.request.urlopen(f"http://{ip}:{port}/metrics", timeout=10).read().decode()
    lines = [ln for ln in text.splitlines() if ln.startswith("neuron_dra_driver_registered ")]
    print("RESULT " + json.dumps({"ip": ip, "registered": lines}))
"""


claims = claims_fixture(TRN1, "claims")


def test_the_dra_node_publishes_its_sixteen_devices_with_awss_attributes(
    cluster: Cluster,
) -> None:
    node = dra_node(cluster, TRN1)
    slices = wait_for("the DRA node's ResourceSlices", lambda: node_slices(cluster, node), 120)
    devices = whole_devices(slices)
    assert sorted(d["name"] for d in devices) == sorted(f"neurondevice{i}" for i in range(16))
    assert {s["spec"]["pool"]["name"] for s in slices} == {node}
    by_name = {d["name"]: d["attributes"] for d in devices}
    assert by_name["neurondevice5"]["instanceType"] == {"string": "trn1.32xlarge"}
    assert by_name["neurondevice5"]["deviceId"] == {"int": 5}
    group4 = GROUP_ATTRIBUTE.format(4)
    assert by_name["neurondevice4"][group4] == by_name["neurondevice7"][group4]
    assert by_name["neurondevice3"][group4] != by_name["neurondevice4"][group4]


def test_partitions_are_published_from_1_36_and_whole_devices_with_an_event_before(
    cluster: Cluster,
) -> None:
    """examples/kind.yaml turns core partitions on. From 1.36 (DRAPartitionableDevices on by
    default) the node has counter slices; before it (the oldest release CI runs) the API server
    keeps no counters, and the driver publishes whole devices only and says so on the Node."""
    node = dra_node(cluster, TRN1)
    minor = int("".join(ch for ch in client.VersionApi().get_code().minor if ch.isdigit()))
    slices = wait_for("the DRA node's ResourceSlices", lambda: node_slices(cluster, node), 120)
    counters = [s for s in slices if s["spec"].get("sharedCounters")]
    if minor >= 36:
        assert counters
        return
    assert not counters
    assert {d["name"] for d in whole_devices(slices)} == {f"neurondevice{i}" for i in range(16)}
    assert len(whole_devices(slices)) == sum(len(s["spec"].get("devices") or []) for s in slices)

    def events() -> list[str]:
        found = cluster.core.list_namespaced_event(
            "default", field_selector=f"involvedObject.kind=Node,involvedObject.name={node}"
        ).items
        return [e.reason for e in found if e.type == "Warning"]

    assert "NeuronCorePartitionsUnavailable" in wait_for("the Node's Event", events, 60)


def test_the_device_plugin_stays_off_the_dra_node(cluster: Cluster) -> None:
    node = dra_node(cluster, TRN1)
    pods = cluster.core.list_namespaced_pod(NAMESPACE, field_selector=f"spec.nodeName={node}").items
    components = {(p.metadata.labels or {}).get("app.kubernetes.io/component") for p in pods}
    assert "devicePlugin" not in components and "device-plugin" not in components, components
    assert "dra" in components, components


def test_a_claim_for_one_device_gives_the_container_that_devices_cores(claims: Claims) -> None:
    claims.template("one", 1)
    claims.pod("one", "one")
    claims.running("one")
    assert len(claims.sees_its_claim("one")) == 1


def test_four_connected_devices_on_trn1_get_one_aligned_block(claims: Claims) -> None:
    claims.template("four", 4, group=4)
    claims.pod("four", "four")
    claims.running("four")
    devices = claims.sees_its_claim("four")
    assert devices == list(range(devices[0], devices[0] + 4)) and devices[0] % 4 == 0, devices


def test_seven_connected_devices_cannot_be_placed_and_the_pod_says_why(claims: Claims) -> None:
    claims.template("seven", 7, group=4)
    claims.pod("seven", "seven")
    message = claims.unschedulable("seven")
    assert "cannot allocate all claims" in message, message


def test_two_claims_never_share_a_device_and_a_deleted_pod_frees_its_devices(
    claims: Claims,
) -> None:
    claims.template("eight", 8, group=8)
    names = ("a", "b", "c")
    for name in names:
        claims.pod(name, "eight")
    # Two of the three get the node's two blocks of 8; which two is the scheduler's choice.
    running = wait_for("two of three pods running", lambda: claims.running_of(names, 2), 120)
    assert len(running) == 2, running
    (waiting,) = set(names) - set(running)
    first, second = (claims.sees_its_claim(n) for n in sorted(running))
    assert not set(first) & set(second), (first, second)
    assert "cannot allocate all claims" in claims.unschedulable(waiting)
    freed = claims.devices(sorted(running)[0])
    claims.delete(sorted(running)[0])
    claims.running(waiting)
    assert claims.sees_its_claim(waiting) == freed


def test_a_restarted_driver_loses_nothing(cluster: Cluster, claims: Claims) -> None:
    claims.template("four", 4, group=4)
    claims.pod("before", "four")
    claims.running("before")
    held = claims.sees_its_claim("before")
    old = driver_pod(cluster, claims.node)
    assert old is not None
    cluster.core.delete_namespaced_pod(old.metadata.name, NAMESPACE)
    wait_for(
        "a new driver ready on the DRA node",
        lambda: (p := driver_pod(cluster, claims.node)) and p.metadata.uid != old.metadata.uid,
        180,
    )
    # The claim prepared by the old driver is unprepared by the new one (from its
    # checkpoint), and its devices go to the next claim; the running pod kept its cores.
    assert claims.sees_its_claim("before") == held
    claims.delete("before")
    wait_for("the claim of the deleted pod freed", lambda: not held_on(claims.node), 120)
    for name in ("after-1", "after-2", "after-3", "after-4"):
        claims.pod(name, "four")
    got = []
    for name in ("after-1", "after-2", "after-3", "after-4"):
        claims.running(name)
        got.extend(claims.sees_its_claim(name))
    assert sorted(got) == list(range(16)), got


def test_every_drivers_metrics_are_served_through_the_metrics_service(
    cluster: Cluster, claims: Claims
) -> None:
    service = f"{RELEASE}-dra-metrics.{NAMESPACE}.svc"
    results = script_results(claims.pods, "scraper", SCRAPE, service, str(HEALTH_PORT))
    drivers = cluster.core.list_namespaced_pod(
        NAMESPACE, label_selector="app.kubernetes.io/component=dra"
    ).items
    assert sorted(r["ip"] for r in results) == sorted(p.status.pod_ip for p in drivers), results
    assert all(r["registered"] == ["neuron_dra_driver_registered 1.0"] for r in results), results
