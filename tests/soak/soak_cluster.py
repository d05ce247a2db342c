"""The soak's access to the kind cluster: the API through the kubeconfig cluster/harness.py
writes, with a timeout on every call (the control plane is paused on purpose), the node
containers through docker, and one PodResources probe pod per device-plugin node."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import urllib3
from kubernetes import client, config
from kubernetes.client.rest import ApiException

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "cluster"))
from shell import env  # the harness's PATH: its docker, kubectl and helm

T = TypeVar("T")
DRA_LABEL = "neuron.k8s.local/dra"
INSTANCE_TYPE = "node.kubernetes.io/instance-type"
CONTROL_PLANE = "node-role.kubernetes.io/control-plane"
NEURON = "aws.amazon.com/neuron"
NEURONCORE = "aws.amazon.com/neuroncore"
GROUP, VERSION = "resource.k8s.io", "v1"
PROBE_LABEL = {"soak": "probe"}
PR_DIR = "/var/lib/kubelet/pod-resources"
# Runs in the probe pod: prints the kubelet's PodResources List, our resources only, as one
# JSON line every few seconds (the soak reads the newest line from the pod's log).
PROBE = r"""
import json, sys, time, grpc
from neuron_k8s._proto import podresources_v1_pb2 as pb, podresources_v1_pb2_grpc as pbg
stub = pbg.PodResourcesListerStub(grpc.insecure_channel("unix://@PR_DIR@/kubelet.sock"))
while True:
    try:
        out = {}
        for p in stub.List(pb.ListPodResourcesRequest(), timeout=5).pod_resources:
            for c in p.containers:
                ids = {}
                for d in c.devices:
                    if d.resource_name.startswith("aws.amazon.com/"):
                        ids.setdefault(d.resource_name, []).extend(int(i) for i in d.device_ids)
                if ids:
                    out["/".join((p.namespace, p.name, c.name))] = ids
        print("PR " + json.dumps({"t": time.time(), "containers": out}), flush=True)
    except Exception as err:
        print("PRERR " + repr(err)[:300], flush=True)
    time.sleep(float(sys.argv[1]))
""".replace("@PR_DIR@", PR_DIR)


class Kube:
    """Every call has a timeout; a failed call is counted and answers None, since the soak
    must ride out the faults it injects."""

    def __init__(self, kubeconfig: str, timeout: float = 15.0) -> None:
        cfg = client.Configuration()
        config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
        cfg.retries = 1
        api = client.ApiClient(cfg)
        self.core = client.CoreV1Api(api)
        self.batch = client.BatchV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.timeout = timeout
        self.errors = 0

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        try:
            return fn(*args, _request_timeout=self.timeout, **kwargs)
        except ApiException as err:
            if err.status != 404:
                self.errors += 1
            return None
        except (urllib3.exceptions.HTTPError, OSError):
            self.errors += 1
            return None

    # --- nodes and components ---------------------------------------------------------
    def nodes(self) -> list[client.V1Node]:
        found = self.call(self.core.list_node)
        return list(found.items) if found else []

    def delete_component_pods(self, component: str, node: str | None) -> int:
        """Kill (grace 0) the chart's pods of a component, those on `node` when given."""
        selector = f"app.kubernetes.io/component={component}"
        found = self.call(self.core.list_pod_for_all_namespaces, label_selector=selector)
        victims = [p for p in found.items if node in (None, p.spec.node_name)] if found else []
        for p in victims:
            self.call(
                self.core.delete_namespaced_pod,
                p.metadata.name,
                p.metadata.namespace,
                grace_period_seconds=0,
            )
        return len(victims)

    def components_ready(self, namespace: str) -> bool:
        found = self.call(self.core.list_namespaced_pod, namespace)
        if not found or not found.items:
            return False
        return all(
            any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
            for p in found.items
            if p.status.phase != "Succeeded"
        )

    @staticmethod
    def docker(*args: str) -> None:
        subprocess.run(["docker", *args], check=True, env=env(), capture_output=True, timeout=90)

    # --- the soak's namespace ---------------------------------------------------------
    def ensure_namespace(self, ns: str) -> None:
        if self.call(self.core.read_namespace, ns) is None:
            self.core.create_namespace({"metadata": {"name": ns}}, _request_timeout=self.timeout)

    def pods(self, ns: str) -> list[client.V1Pod] | None:
        found = self.call(self.core.list_namespaced_pod, ns)
        return list(found.items) if found is not None else None

    def log(self, ns: str, pod: str, container: str, tail: int | None = None) -> str | None:
        kw: dict[str, Any] = {"container": container}
        if tail:
            kw["tail_lines"] = tail
        return self.call(self.core.read_namespaced_pod_log, pod, ns, **kw)

    def create(self, ns: str, kind: str, body: dict[str, Any]) -> bool:
        if kind == "Job":
            return self.call(self.batch.create_namespaced_job, ns, body) is not None
        if kind == "ResourceClaimTemplate":
            plural = "resourceclaimtemplates"
            made = self.call(
                self.custom.create_namespaced_custom_object, GROUP, VERSION, ns, plural, body
            )
            return made is not None
        return self.call(self.core.create_namespaced_pod, ns, body) is not None

    def delete(self, ns: str, kind: str, name: str) -> None:
        if kind == "Job":
            opts = client.V1DeleteOptions(propagation_policy="Background", grace_period_seconds=0)
            self.call(self.batch.delete_namespaced_job, name, ns, body=opts)
        else:
            self.call(self.core.delete_namespaced_pod, name, ns, grace_period_seconds=0)

    def clear(self, ns: str, timeout: float) -> bool:
        """Delete every Job and pod of the soak; True once none is left."""
        opts = client.V1DeleteOptions(propagation_policy="Background", grace_period_seconds=0)
        self.call(self.batch.delete_collection_namespaced_job, ns, body=opts)
        self.call(self.core.delete_collection_namespaced_pod, ns, grace_period_seconds=0)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pods(ns) == []:
                return True
            time.sleep(2)
        return False

    def claim(self, ns: str, name: str) -> dict[str, Any] | None:
        return self.call(
            self.custom.get_namespaced_custom_object, GROUP, VERSION, ns, "resourceclaims", name
        )

    def claims_holding(self, node: str) -> list[str] | None:
        """The claims with devices of `node` allocated (namespace/name)."""
        doc = self.call(self.custom.list_cluster_custom_object, GROUP, VERSION, "resourceclaims")
        if doc is None:
            return None
        out = []
        for c in doc["items"]:
            results = ((c.get("status") or {}).get("allocation") or {}).get("devices") or {}
            if any(r.get("pool") == node for r in results.get("results") or []):
                out.append(f"{c['metadata']['namespace']}/{c['metadata']['name']}")
        return out

    # --- PodResources -------------------------------------------------------------------
    def start_probes(self, ns: str, nodes: list[str], image: str, every: float) -> None:
        for node in nodes:
            name = f"podresources-{node}"
            if self.call(self.core.read_namespaced_pod, name, ns) is None:
                self.create(ns, "Pod", probe_pod(name, node, image, every))

    def podresources(
        self, ns: str, node: str, max_age: float
    ) -> dict[str, dict[str, list[int]]] | None:
        """The newest PodResources listing of `node` (namespace/pod/container -> resource ->
        device IDs), or None when there is none younger than `max_age` seconds."""
        text = self.log(ns, f"podresources-{node}", "probe", tail=3)
        for line in reversed((text or "").splitlines()):
            if line.startswith("PR "):
                doc = json.loads(line[3:])
                fresh = time.time() - float(doc["t"]) <= max_age
                return dict(doc["containers"]) if fresh else None
        return None


def probe_pod(name: str, node: str, image: str, every: float) -> dict[str, Any]:
    """A pod on `node` (bound directly: it must run while the scheduler is down) that reads the
    kubelet's PodResources socket as root."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": PROBE_LABEL},
        "spec": {
            "nodeName": node,
            "tolerations": [{"operator": "Exists"}],
            "terminationGracePeriodSeconds": 0,
            "securityContext": {"runAsUser": 0},
            "containers": [
                {
                    "name": "probe",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": ["python3", "-c", PROBE, str(every)],
                    "volumeMounts": [{"name": "pr", "mountPath": PR_DIR, "readOnly": True}],
                    "resources": {"requests": {"cpu": "5m", "memory": "32Mi"}},
                }
            ],
            "volumes": [{"name": "pr", "hostPath": {"path": PR_DIR, "type": "Directory"}}],
        },
    }
