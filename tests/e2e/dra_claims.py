"""ResourceClaims on the kind cluster's DRA nodes (tests/e2e/test_2x_dra*.py): pods that ask
for Neuron devices or core sets through ResourceClaimTemplates, in a namespace of their own,
what each container saw, and what each claim was allocated."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import (
    DRA_NODE_LABEL,
    INSTANCE_TYPE,
    NAMESPACE,
    SHAPES,
    Cluster,
    Pods,
    cores_container,
    needs_kind,
    wait_for,
)
from kubernetes import client
from kubernetes.client.rest import ApiException

DRIVER = "neuron.aws.com"
# charts/neuron/examples/kind.yaml turns partitions on; their classes keep their default names.
CORE_CLASS = "neuroncore.aws.com"
CORE_SET_PREFIX = "neuroncores"
DEVICE_SET_CLASS = "neurondevices.aws.com"
DEVICE_SET_PREFIX = "neurondevices"
GROUP, VERSION = "resource.k8s.io", "v1"
GROUP_ATTRIBUTE = "resource.aws.com/devicegroup{}_id"


def dra_node(cluster: Cluster, instance_type: str) -> str:
    """The DRA worker of kind-config.yaml that imitates `instance_type`."""
    selector = f"{DRA_NODE_LABEL}=true,{INSTANCE_TYPE}={instance_type}"
    nodes = cluster.core.list_node(label_selector=selector).items
    if not nodes:
        needs_kind()
        pytest.skip(f"no {instance_type} node labelled for the DRA driver")
    return str(nodes[0].metadata.name)


def whole_devices(slices: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for s in slices for d in s["spec"].get("devices") or [] if is_whole(d["name"])]


def is_whole(device: str) -> bool:
    return not device.startswith((CORE_SET_PREFIX, DEVICE_SET_PREFIX))


def cores_of(device: str, cores_per_device: int) -> list[int]:
    """The cores a device of the driver stands for: neurondevice<N>, neuroncores<A>-<B> (cores
    A to B), or neurondevices<A>-<B> (devices A to B)."""
    if device.startswith(DEVICE_SET_PREFIX):
        first, last = (int(x) for x in device.removeprefix(DEVICE_SET_PREFIX).split("-"))
        return list(range(first * cores_per_device, (last + 1) * cores_per_device))
    if is_whole(device):
        d = int(device.removeprefix("neurondevice"))
        return list(range(d * cores_per_device, (d + 1) * cores_per_device))
    first, last = device.removeprefix(CORE_SET_PREFIX).split("-")
    return list(range(int(first), int(last) + 1))


class Claims:
    """Pods that ask for Neuron devices through ResourceClaimTemplates, in a namespace of
    their own; what each container saw, and what each claim was allocated."""

    def __init__(self, cluster: Cluster, namespace: str, node: str) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.node = node
        labels = cluster.core.read_node(node).metadata.labels or {}
        self.cores_per_device = SHAPES[labels[INSTANCE_TYPE]][1]
        self.custom = client.CustomObjectsApi()
        self.pods = Pods(cluster, namespace)

    def template(
        self,
        name: str,
        count: int,
        group: int | None = None,
        device_class: str = DRIVER,
        selector: str | None = None,
    ) -> None:
        # count 0: every device of the class on the node (allocationMode All).
        exactly: dict[str, Any] = {"deviceClassName": device_class, "allocationMode": "All"}
        if count:
            exactly.update(allocationMode="ExactCount", count=count)
        if selector:
            exactly["selectors"] = [{"cel": {"expression": selector}}]
        request: dict[str, Any] = {"name": "neurons", "exactly": exactly}
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

    def core_template(self, name: str, cores: int, first: int | None = None) -> None:
        """One set of `cores` contiguous cores, as docs/dra.md writes it (from core `first`,
        where given)."""
        selector = f'device.attributes["{DRIVER}"].coreCount == {cores}'
        if first is not None:
            selector += f' && device.attributes["{DRIVER}"].firstCore == {first}'
        self.template(name, 1, device_class=CORE_CLASS, selector=selector)

    def device_set_template(self, name: str, devices: int) -> None:
        """`devices` adjacent whole devices, as docs/dra.md writes it."""
        selector = f'device.attributes["{DRIVER}"].deviceCount == {devices}'
        self.template(name, 1, device_class=DEVICE_SET_CLASS, selector=selector)

    def device_template(self, name: str, device: int) -> None:
        """One named whole device."""
        self.template(name, 1, selector=f'device.attributes["{DRIVER}"].deviceId == {device}')

    def pod(self, name: str, template: str) -> str:
        """A pod on the node whose container uses a claim made from `template`."""
        claims = [{"name": "neuron", "resourceClaimTemplateName": template}]
        return self._create(name, {"claims": [{"name": "neuron"}]}, claims)

    def resource_pod(self, name: str, resource: str, count: int) -> str:
        """A pod on the node asking for `count` of an extended resource, as on the device-plugin
        path, through the default scheduler."""
        return self._create(name, {"limits": {resource: str(count)}})

    def _create(
        self, name: str, resources: dict[str, Any], claims: list[dict[str, Any]] | None = None
    ) -> str:
        spec: dict[str, Any] = {
            "terminationGracePeriodSeconds": 0,
            "nodeSelector": {"kubernetes.io/hostname": self.node},
            "tolerations": [{"operator": "Exists"}],
            "containers": [cores_container("c0", resources)],
        }
        if claims:
            spec["resourceClaims"] = claims
        body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}
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

    def claim_name(self, pod: str) -> str:
        """The pod's claim: made from its template, or by the scheduler for its extended
        resource."""
        status = self.cluster.core.read_namespaced_pod(pod, self.namespace).status
        extended = status.extended_resource_claim_status
        if extended is not None:
            return str(extended.resource_claim_name)
        return str(next(s.resource_claim_name for s in status.resource_claim_statuses or []))

    def claim_of(self, pod: str) -> dict[str, Any]:
        name = self.claim_name(pod)
        return self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "resourceclaims", name
        )

    def allocated(self, pod: str) -> list[str]:
        """The names of the devices the pod's claim was allocated on the DRA node."""
        results = self.claim_of(pod)["status"]["allocation"]["devices"]["results"]
        assert {(r["driver"], r["pool"]) for r in results} == {(DRIVER, self.node)}, results
        return [r["device"] for r in results]

    def devices(self, pod: str) -> list[int]:
        """The whole-device indices the pod's claim was allocated."""
        names = self.allocated(pod)
        assert all(is_whole(n) for n in names), names
        return sorted(int(n.removeprefix("neurondevice")) for n in names)

    def claimed_cores(self, pod: str) -> list[int]:
        """The cores of everything the pod's claim was allocated, each once."""
        cores = [c for n in self.allocated(pod) for c in cores_of(n, self.cores_per_device)]
        assert len(set(cores)) == len(cores), cores
        return sorted(cores)

    def sees_its_cores(self, pod: str) -> list[int]:
        """The container's NEURON_RT_VISIBLE_CORES are exactly the cores of its claim's
        allocation; returns them."""
        want = self.claimed_cores(pod)
        assert self.cores(pod) == want, (pod, self.allocated(pod))
        return want

    def sees_its_claim(self, pod: str) -> list[int]:
        """As sees_its_cores, for a claim of whole devices; returns the devices."""
        self.sees_its_cores(pod)
        return self.devices(pod)

    def settled(self, names: tuple[str, ...]) -> tuple[list[str], list[str]] | None:
        """The pods of `names` that run and those the scheduler refused, once each pod is one
        or the other."""
        running, refused = [], []
        for name in names:
            pod = self.cluster.core.read_namespaced_pod(name, self.namespace)
            conditions = pod.status.conditions or []
            if pod.status.phase == "Running":
                running.append(name)
            elif any(c.type == "PodScheduled" and c.reason == "Unschedulable" for c in conditions):
                refused.append(name)
            else:
                return None
        return running, refused

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
            return all(
                absent(lambda n=n: self.cluster.core.read_namespaced_pod(n, self.namespace))
                for n in names
            )

        wait_for(f"pods {names} gone", gone, 120)

    def claim_gone(self, name: str) -> bool:
        return absent(
            lambda: self.custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, "resourceclaims", name
            )
        )


def absent(read: Callable[[], object]) -> bool:
    """Whether reading an object answers 404."""
    try:
        read()
    except ApiException as err:
        if err.status != 404:
            raise
        return True
    return False


def claims_fixture(instance_type: str, name: str) -> Any:
    """A fixture `name` giving a test its Claims on the DRA worker of `instance_type`."""

    @pytest.fixture(name=name)
    def fixture(cluster: Cluster) -> Iterator[Claims]:
        with claims_on(cluster, dra_node(cluster, instance_type)) as c:
            yield c

    return fixture


@contextlib.contextmanager
def claims_on(cluster: Cluster, node: str) -> Iterator[Claims]:
    """A namespace for one test's claims on `node`, once nothing holds its devices; its pods
    are gone when it ends."""
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


def tainted(cluster: Cluster, node: str) -> dict[str, list[dict[str, Any]]]:
    """The node's published devices that carry a taint, with their taints."""
    return {
        d["name"]: d["taints"]
        for s in node_slices(cluster, node)
        for d in s["spec"].get("devices") or []
        if d.get("taints")
    }


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
