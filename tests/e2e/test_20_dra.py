"""The DRA driver on kind (docs/dra.md): the third worker, a fake trn1.32xlarge labelled
neuron.k8s.local/dra=true, runs the chart's neuron-dra-driver instead of the device plugin.
Claims are written as for AWS's driver (DeviceClass neuron.aws.com, matchAttribute on
resource.aws.com/devicegroup<N>_id); the default kube-scheduler allocates them and the kubelet
prepares them through the driver and CDI."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import (
    DRA_NODE_LABEL,
    IMAGE,
    NAMESPACE,
    PULL_POLICY,
    Cluster,
    Pods,
    needs_kind,
    wait_for,
)
from kubernetes import client
from kubernetes.client.rest import ApiException

DRIVER = "neuron.aws.com"
GROUP, VERSION = "resource.k8s.io", "v1"
CORES_PER_DEVICE = 2  # trn1.32xlarge
GROUP_ATTRIBUTE = "resource.aws.com/devicegroup{}_id"


def dra_node(cluster: Cluster) -> str:
    nodes = cluster.core.list_node(label_selector=f"{DRA_NODE_LABEL}=true").items
    if not nodes:
        needs_kind()
        pytest.skip("no node labelled for the DRA driver")
    return nodes[0].metadata.name


class Claims:
    """Pods that ask for Neuron devices through ResourceClaimTemplates, in a namespace of
    their own; what each container saw, and what each claim was allocated."""

    def __init__(self, cluster: Cluster, namespace: str, node: str) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.node = node
        self.custom = client.CustomObjectsApi()
        self.pods = Pods(cluster, namespace)

    def template(self, name: str, count: int, group: int | None = None) -> None:
        request: dict[str, Any] = {
            "name": "neurons",
            "exactly": {"deviceClassName": DRIVER, "allocationMode": "ExactCount", "count": count},
        }
        spec: dict[str, Any] = {"devices": {"requests": [request]}}
        if group:
            spec["devices"]["constraints"] = [
                {"requests": ["neurons"], "matchAttribute": GROUP_ATTRIBUTE.format(group)}
            ]
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ResourceClaimTemplate",
            "metadata": {"name": name},
            "spec": {"spec": spec},
        }
        self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "resourceclaimtemplates", body
        )

    def pod(self, name: str, template: str) -> str:
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {
                "terminationGracePeriodSeconds": 0,
                "nodeSelector": {"kubernetes.io/hostname": self.node},
                "tolerations": [{"operator": "Exists"}],
                "resourceClaims": [{"name": "neuron", "resourceClaimTemplateName": template}],
                "containers": [
                    {
                        "name": "c0",
                        "image": IMAGE,
                        "imagePullPolicy": PULL_POLICY,
                        "command": [
                            "sh",
                            "-c",
                            'echo "CORES=$NEURON_RT_VISIBLE_CORES"; exec sleep 3600',
                        ],
                        "resources": {"claims": [{"name": "neuron"}]},
                    }
                ],
            },
        }
        self.cluster.core.create_namespaced_pod(self.namespace, body)
        return name

    def running(self, name: str, timeout: float = 120) -> None:
        self.pods.wait_running(name, timeout)

    def cores(self, name: str) -> list[int]:
        return self.pods.cores(name)

    def running_of(self, names: tuple[str, ...], count: int) -> list[str] | None:
        """The pods of `names` that run, once `count` of them do."""
        pods = [self.cluster.core.read_namespaced_pod(n, self.namespace) for n in names]
        running = [p.metadata.name for p in pods if p.status.phase == "Running"]
        return running if len(running) >= count else None

    def claim_of(self, pod: str) -> dict[str, Any]:
        status = self.cluster.core.read_namespaced_pod(pod, self.namespace).status
        name = next(s.resource_claim_name for s in status.resource_claim_statuses or [])
        return self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "resourceclaims", name
        )

    def devices(self, pod: str) -> list[int]:
        """The device indices the pod's claim was allocated on the DRA node."""
        results = self.claim_of(pod)["status"]["allocation"]["devices"]["results"]
        assert {(r["driver"], r["pool"]) for r in results} == {(DRIVER, self.node)}, results
        return sorted(int(r["device"].removeprefix("neurondevice")) for r in results)

    def sees_its_claim(self, pod: str) -> list[int]:
        """The container's NEURON_RT_VISIBLE_CORES are exactly the cores of its claim's
        devices; returns the devices."""
        devices = self.devices(pod)
        want = [d * CORES_PER_DEVICE + k for d in devices for k in range(CORES_PER_DEVICE)]
        assert self.cores(pod) == want, (pod, devices)
        return devices

    def unschedulable(self, name: str, timeout: float = 60) -> str:
        def check() -> str | None:
            pod = self.cluster.core.read_namespaced_pod(name, self.namespace)
            assert pod.status.phase == "Pending", pod.status.phase
            for c in pod.status.conditions or []:
                if c.type == "PodScheduled" and c.status == "False" and c.reason == "Unschedulable":
                    return c.message
            return None

        return wait_for(f"{name} unschedulable", check, timeout)

    def delete(self, *names: str) -> None:
        for name in names:
            self.cluster.core.delete_namespaced_pod(name, self.namespace, grace_period_seconds=0)

        def gone() -> bool:
            for name in names:
                try:
                    self.cluster.core.read_namespaced_pod(name, self.namespace)
                    return False
                except ApiException as err:
                    if err.status != 404:
                        raise
            return True

        wait_for(f"pods {names} gone", gone, 120)


@pytest.fixture
def claims(cluster: Cluster) -> Iterator[Claims]:
    node = dra_node(cluster)
    # Each test starts with every device free: the claims of the last test's pods are
    # deallocated and deleted after the pods, by the resource claim controller.
    wait_for(f"no claim holding devices of {node}", lambda: not held_on(node), 120)
    ns = f"e2e-dra-{uuid.uuid4().hex[:8]}"
    cluster.core.create_namespace({"metadata": {"name": ns}})
    try:
        yield Claims(cluster, ns, node)
    finally:
        cluster.core.delete_collection_namespaced_pod(ns, grace_period_seconds=0)
        wait_for(
            f"namespace {ns} pods gone", lambda: not cluster.core.list_namespaced_pod(ns).items, 120
        )
        cluster.core.delete_namespace(ns)


def held_on(node: str) -> list[str]:
    """The claims (namespace/name) holding devices of the DRA node."""
    doc = client.CustomObjectsApi().list_cluster_custom_object(GROUP, VERSION, "resourceclaims")
    out = []
    for claim in doc["items"]:
        results = ((claim.get("status") or {}).get("allocation") or {}).get("devices") or {}
        if any(r["pool"] == node for r in results.get("results") or []):
            out.append(f"{claim['metadata']['namespace']}/{claim['metadata']['name']}")
    return out


def node_slices(cluster: Cluster, node: str) -> list[dict[str, Any]]:
    doc = client.CustomObjectsApi().list_cluster_custom_object(
        GROUP, VERSION, "resourceslices", field_selector=f"spec.nodeName={node}"
    )
    return [s for s in doc["items"] if s["spec"]["driver"] == DRIVER]


def driver_pod(cluster: Cluster, node: str) -> client.V1Pod | None:
    pods = cluster.core.list_namespaced_pod(
        NAMESPACE,
        label_selector="app.kubernetes.io/component=dra",
        field_selector=f"spec.nodeName={node}",
    ).items
    ready = [
        p
        for p in pods
        if p.metadata.deletion_timestamp is None
        and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
    ]
    return ready[0] if ready else None


def test_the_dra_node_publishes_its_sixteen_devices_with_awss_attributes(
    cluster: Cluster,
) -> None:
    node = dra_node(cluster)
    slices = wait_for("the DRA node's ResourceSlices", lambda: node_slices(cluster, node), 120)
    devices = [d for s in slices for d in s["spec"]["devices"]]
    assert sorted(d["name"] for d in devices) == sorted(f"neurondevice{i}" for i in range(16))
    assert {s["spec"]["pool"]["name"] for s in slices} == {node}
    by_name = {d["name"]: d["attributes"] for d in devices}
    assert by_name["neurondevice5"]["instanceType"] == {"string": "trn1.32xlarge"}
    assert by_name["neurondevice5"]["deviceId"] == {"int": 5}
    group4 = GROUP_ATTRIBUTE.format(4)
    assert by_name["neurondevice4"][group4] == by_name["neurondevice7"][group4]
    assert by_name["neurondevice3"][group4] != by_name["neurondevice4"][group4]


def test_the_device_plugin_stays_off_the_dra_node(cluster: Cluster) -> None:
    node = dra_node(cluster)
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
