"""Builders of Pod and Node objects shaped as kube-scheduler and the API server send them,
an HTTP client for the extender under test, and polling with a deadline. Shared by the tests
(through conftest.py's fixtures) and by plugin-src/bench/bench_extender.py."""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from neuron_k8s.topology import INSTANCE_TYPES, shape_for
from waiting import wait_until

NEURON = "aws.amazon.com/neuron"
CORE = "aws.amazon.com/neuroncore"


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> Any:
    return wait_until(predicate, timeout, what, interval=0.005)


def make_node(
    name: str,
    instance_type: str | None = "inf2.48xlarge",
    devices: int | None = None,
    cores: int | None = None,
    unhealthy: str | None = None,
) -> dict[str, Any]:
    """A Node as the API server returns it, with the capacity the device plugin advertises."""
    if instance_type in INSTANCE_TYPES:
        shape = shape_for(instance_type)
        devices = shape.devices if devices is None else devices
        cores = shape.cores if cores is None else cores
    capacity = {
        "cpu": "192",
        "ephemeral-storage": "524275692Ki",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
        "memory": "790480912Ki",
        "pods": "737",
    }
    if devices:
        capacity[NEURON] = str(devices)
    if cores:
        capacity[CORE] = str(cores)
    labels = {
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "topology.kubernetes.io/region": "us-east-2",
        "topology.kubernetes.io/zone": "us-east-2b",
    }
    if instance_type:
        labels["node.kubernetes.io/instance-type"] = instance_type
        labels["beta.kubernetes.io/instance-type"] = instance_type
    annotations = {
        "node.alpha.kubernetes.io/ttl": "0",
        "volumes.kubernetes.io/controller-managed-attach-detach": "true",
    }
    if unhealthy is not None:
        annotations["neuron.k8s.local/unhealthy-devices"] = unhealthy
    return {
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "uid": f"node-uid-{name}",
            "resourceVersion": "1",
            "creationTimestamp": "2025-01-10T09:00:00Z",
            "labels": labels,
            "annotations": annotations,
        },
        "spec": {"providerID": f"aws:///us-east-2b/i-{name}"},
        "status": {
            "capacity": capacity,
            "allocatable": dict(capacity),
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "lastHeartbeatTime": "2025-01-10T10:00:00Z",
                    "lastTransitionTime": "2025-01-10T09:01:00Z",
                    "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                }
            ],
            "addresses": [
                {"type": "InternalIP", "address": "10.0.1.17"},
                {"type": "Hostname", "address": name},
            ],
            "nodeInfo": {
                "kubeletVersion": "v1.33.9",
                "containerRuntimeVersion": "containerd://1.7.27",
                "kernelVersion": "6.1.141-155.222.amzn2023.x86_64",
                "osImage": "Amazon Linux 2023.7.20250623",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        },
    }


def make_pod(
    name: str,
    containers: list[tuple[str, dict[str, str]]] | None = None,
    namespace: str = "default",
    uid: str | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A pending Pod as kube-scheduler passes it to the extender (json.Marshal of v1.Pod)."""
    if containers is None:
        containers = [("main", {CORE: "2"})]
    specs = []
    for cname, neuron in containers:
        specs.append(
            {
                "name": cname,
                "image": "public.ecr.aws/neuron/pytorch-inference-neuronx:2.1.2",
                "command": ["python", "serve.py"],
                "resources": {
                    "limits": {"memory": "8Gi", **neuron},
                    "requests": {"cpu": "2", "memory": "8Gi", **neuron},
                },
                "volumeMounts": [
                    {
                        "name": "kube-api-access-x7k2p",
                        "readOnly": True,
                        "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                    }
                ],
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
                "imagePullPolicy": "IfNotPresent",
            }
        )
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid or f"uid-{namespace}-{name}",
            "resourceVersion": "4711",
            "creationTimestamp": "2025-01-10T10:00:00Z",
            "labels": {"app": name.rsplit("-", 1)[0]},
            "annotations": dict(annotations or {"k8s.ovn.org/pod-networks": '{"default":{}}'}),
            "managedFields": [
                {
                    "manager": "kubectl-client-side-apply",
                    "operation": "Update",
                    "apiVersion": "v1",
                    "time": "2025-01-10T10:00:00Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:spec": {"f:containers": {}}},
                }
            ],
        },
        "spec": {
            "volumes": [
                {
                    "name": "kube-api-access-x7k2p",
                    "projected": {
                        "sources": [
                            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}
                        ],
                        "defaultMode": 420,
                    },
                }
            ],
            "containers": specs,
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
            "serviceAccount": "default",
            "securityContext": {},
            "schedulerName": "my-scheduler",
            "tolerations": [
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
                {"key": "aws.amazon.com/neuron", "operator": "Exists", "effect": "NoSchedule"},
            ],
            "priority": 0,
            "enableServiceLinks": True,
            "preemptionPolicy": "PreemptLowerThanOrEqual",
        },
        "status": {"phase": "Pending", "qosClass": "Burstable"},
    }


def filter_args(pod: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """ExtenderArgs as kube-scheduler sends them with nodeCacheCapable: true."""
    return {"Pod": pod, "Nodes": None, "NodeNames": names}


def filter_args_nodes(pod: dict[str, Any], nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """ExtenderArgs with nodeCacheCapable: false: the full NodeList."""
    return {"Pod": pod, "Nodes": {"metadata": {}, "items": nodes}, "NodeNames": None}


def binding_args(pod: dict[str, Any], node: str) -> dict[str, Any]:
    meta = pod["metadata"]
    return {
        "PodName": meta["name"],
        "PodNamespace": meta["namespace"],
        "PodUID": meta["uid"],
        "Node": node,
    }


@dataclass
class Response:
    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class RunningExtender:
    extender: Any
    server: Any

    @property
    def port(self) -> int:
        return int(self.server.port)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return Response(resp.status, resp.read(), dict(resp.getheaders()))
        finally:
            conn.close()

    def post(self, verb: str, doc: Any) -> Response:
        return self.request(
            "POST",
            f"/{verb}",
            # Compact, as Go's json.Marshal writes what kube-scheduler sends.
            json.dumps(doc, separators=(",", ":")).encode(),
            {"Content-Type": "application/json"},
        )

    def get(self, path: str) -> Response:
        return self.request("GET", path)

    def stop(self) -> None:
        self.server.stop()
        self.extender.stop()


def running_pod(
    name: str,
    node: str,
    cores: list[int],
    cores_per_device: int = 2,
    resource: str = CORE,
    phase: str = "Running",
) -> dict[str, Any]:
    """A pod the extender bound earlier: on `node`, holding `cores` by its annotations."""
    from neuron_k8s.allocator import Placement, Resource
    from neuron_k8s.pods import ContainerAllocation, allocation_annotations

    devices = sorted({c // cores_per_device for c in cores})
    res = Resource(resource)
    ids = tuple(devices) if res.whole_devices else tuple(cores)
    count = str(len(ids))
    pod = make_pod(name, [("main", {resource: count})])
    placement = Placement(res, ids, tuple(cores), tuple(devices))
    pod["metadata"]["annotations"].update(
        allocation_annotations(
            node, [ContainerAllocation("main", placement)], 1_736_503_200 * 10**9
        )
    )
    pod["spec"]["nodeName"] = node
    pod["status"]["phase"] = phase
    return pod
