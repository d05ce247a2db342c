"""Fixtures and helpers for the end-to-end suite.

The suite runs against the cluster named by `--kubeconfig` (pytest-helm-charts' option, or
KUBECONFIG) through pytest-helm-charts' `kube_cluster` fixture. cluster/harness.py creates a
kind cluster on this machine, plants an imitation of the Neuron driver on its workers
(cluster/neurondriver.py; the chart runs in real mode over it) and sets
NEURON_E2E_KIND_CLUSTER; the cases that need that imitation or a look inside nodes (over
`docker exec`) run only then. Against any other
cluster they are skipped, except in CI, where a missing kind cluster is an error: CI must run
them for real.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import testinfra
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from pytest_helm_charts.clusters import Cluster as HelmChartsCluster
from pytest_helm_charts.k8s.daemon_set import wait_for_daemon_sets_to_run
from pytest_helm_charts.k8s.deployment import wait_for_deployments_to_run

KIND_CLUSTER = os.environ.get("NEURON_E2E_KIND_CLUSTER", "")
NAMESPACE = os.environ.get("NEURON_E2E_NAMESPACE", "neuron")
RELEASE = os.environ.get("NEURON_E2E_RELEASE", "neuron")
SCHEDULER = os.environ.get("NEURON_E2E_SCHEDULER", "my-scheduler")
IMAGE = os.environ.get("NEURON_E2E_IMAGE", "neuron-k8s:0.1.0")
PULL_POLICY = "Never" if KIND_CLUSTER else "IfNotPresent"
PLUGIN_DIR = "/var/lib/kubelet/device-plugins"
# The plugin's socket files: a stem per resource, and a suffix of their own per start.
SOCKET_STEMS = ("neuron-devplugin", "neuroncore-devplugin")

NEURON = "aws.amazon.com/neuron"
NEURONCORE = "aws.amazon.com/neuroncore"
INSTANCE_TYPE = "node.kubernetes.io/instance-type"
# kind-config.yaml's worker that runs the DRA driver instead of the device plugin (test_20).
DRA_NODE_LABEL = "neuron.k8s.local/dra"
ALLOCATION = "neuron.k8s.local/allocation"
# The extender's reason for a node whose free cores or devices hold no valid contiguous set.
NO_CONTIGUOUS_SET = "no free contiguous set of"

# Devices and cores per device of the kind workers' instance types (Neuron facts).
SHAPES = {"inf2.48xlarge": (12, 2), "trn1.32xlarge": (16, 2)}


def pytest_configure(config: pytest.Config) -> None:
    # CI runs these on the oldest supported release too (.ci/run, NEURON_E2E_K8S_RELEASE=oldest).
    config.addinivalue_line("markers", "matrix: also run on the oldest supported release")


def is_dra_node(node: client.V1Node) -> bool:
    return (node.metadata.labels or {}).get(DRA_NODE_LABEL) == "true"


def needs_kind() -> None:
    """Skip a case that needs the kind cluster (its driver imitation, its nodes), except in CI."""
    if KIND_CLUSTER:
        return
    if os.environ.get("CI"):
        pytest.fail("CI must run the e2e suite on the harness's kind cluster")
    pytest.skip("needs the kind cluster and its Neuron driver imitation (cluster/harness.py)")


def wait_for(what: str, check: Callable[[], Any], timeout: float = 120, every: float = 1) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except ApiException as err:
            last = err
        else:
            if last:
                return last
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


@dataclass
class Cluster:
    core: client.CoreV1Api
    apps: client.AppsV1Api
    kubeconfig: str

    def neuron_nodes(self) -> dict[str, client.V1Node]:
        """Nodes that advertise Neuron capacity through a device plugin, by name. The DRA node
        is never one, though AWS's device plugin (test_95) leaves capacity in its status."""
        out = {}
        for node in self.core.list_node().items:
            if is_dra_node(node):
                continue
            if int((node.status.capacity or {}).get(NEURONCORE, "0")) > 0:
                out[node.metadata.name] = node
        return out

    def node_of_type(self, instance_type: str) -> str:
        for name, node in self.neuron_nodes().items():
            if node.metadata.labels.get(INSTANCE_TYPE) == instance_type:
                return name
        pytest.skip(f"no {instance_type} node with Neuron capacity in this cluster")

    def allocatable(self, node: str) -> tuple[int, int]:
        alloc = self.core.read_node(node).status.allocatable or {}
        return int(alloc.get(NEURON, "0")), int(alloc.get(NEURONCORE, "0"))

    def kubectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["kubectl", "--kubeconfig", self.kubeconfig, *args],
            text=True,
            capture_output=True,
            check=check,
        )

    def helm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["helm", "--kubeconfig", self.kubeconfig, *args],
            text=True,
            capture_output=True,
            check=check,
        )


@pytest.fixture(scope="module")
def cluster(kube_cluster: HelmChartsCluster, kube_config: str) -> Cluster:
    config.load_kube_config(config_file=kube_config)
    return Cluster(client.CoreV1Api(), client.AppsV1Api(), kube_config)


@pytest.fixture(scope="module", autouse=True)
def release_running(kube_cluster: HelmChartsCluster) -> None:
    """Each module starts with the chart's components running (on the harness's cluster, where
    their names are known)."""
    if not KIND_CLUSTER:
        return
    wait_for_daemon_sets_to_run(
        kube_cluster.kube_client, [f"{RELEASE}-device-plugin"], NAMESPACE, timeout_sec=180
    )
    wait_for_deployments_to_run(
        kube_cluster.kube_client,
        [f"{RELEASE}-extender", f"{RELEASE}-scheduler"],
        NAMESPACE,
        timeout_sec=180,
    )


@pytest.fixture(scope="session")
def node_host() -> Callable[[str], Any]:
    """A testinfra host for a kind node: commands run in the node container."""
    needs_kind()
    return lambda node: testinfra.get_host(f"docker://{node}")


# Prints the cores the container was given and the Neuron device nodes in its /dev.
REPORT = (
    'echo "CORES=$NEURON_RT_VISIBLE_CORES"; printf DEVICES=; '
    'for f in /dev/neuron*; do [ -c "$f" ] && printf "%s " "${f#/dev/neuron}"; done; echo'
)


def cores_container(name: str, resources: dict[str, Any]) -> dict[str, Any]:
    """A container that prints the NEURON_RT_VISIBLE_CORES it got (Pods.cores reads it) and
    the neuronN device nodes it has (Pods.device_nodes), and sleeps."""
    return {
        "name": name,
        "image": IMAGE,
        "imagePullPolicy": PULL_POLICY,
        "command": ["sh", "-c", f"{REPORT}; exec sleep 3600"],
        "resources": resources,
    }


class Pods:
    """Creates test pods in a namespace of their own and reads what they were given."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.cluster = cluster
        self.namespace = namespace

    def create(
        self,
        name: str,
        containers: list[dict[str, int]],
        node: str | None = None,
        node_type: str | None = None,
    ) -> str:
        """A pod whose containers each ask for {resource: count}, print the cores they got,
        and then hold them."""
        selector = {}
        if node:
            selector["kubernetes.io/hostname"] = node
        if node_type:
            selector[INSTANCE_TYPE] = node_type
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "neuron-e2e"}},
            "spec": {
                "schedulerName": SCHEDULER,
                "terminationGracePeriodSeconds": 0,
                "nodeSelector": selector or None,
                "containers": [
                    cores_container(f"c{i}", {"limits": {r: str(n) for r, n in want.items()}})
                    for i, want in enumerate(containers)
                ],
            },
        }
        self.cluster.core.create_namespaced_pod(self.namespace, body)
        return name

    def get(self, name: str) -> client.V1Pod:
        return self.cluster.core.read_namespaced_pod(name, self.namespace)

    def wait_running(self, name: str, timeout: float = 120) -> client.V1Pod:
        try:
            return wait_for(f"pod {name} running", lambda: self._phase_is(name, "Running"), timeout)
        except pytest.fail.Exception:
            pod = self.get(name)
            pytest.fail(
                f"{name} is not running: {pod.status.phase} on {pod.spec.node_name}: "
                f"{pod.status.reason}: {pod.status.message}; "
                f"last scheduling failure: {self.scheduling_failure(name)!r}"
            )

    def _phase_is(self, name: str, phase: str) -> client.V1Pod | None:
        pod = self.get(name)
        return pod if pod.status.phase == phase else None

    def printed(self, name: str, key: str, container: str = "c0") -> str:
        """What the container printed after `KEY=`."""

        def read() -> str | None:
            log = self.cluster.core.read_namespaced_pod_log(
                name, self.namespace, container=container
            )
            return next((ln for ln in log.splitlines() if ln.startswith(f"{key}=")), None)

        line = wait_for(f"{name}/{container} to print {key}", read, 60)
        return line.removeprefix(f"{key}=").strip()

    def device_nodes(self, name: str, container: str = "c0") -> list[int]:
        """The N of the /dev/neuronN character devices in the container."""
        return sorted(int(x) for x in self.printed(name, "DEVICES", container).split())

    def cores(self, name: str, container: str = "c0") -> list[int]:
        """NEURON_RT_VISIBLE_CORES as the container saw it."""
        value = self.printed(name, "CORES", container)
        assert value, f"{name}/{container} got no NEURON_RT_VISIBLE_CORES"
        return [int(x) for x in value.split(",")]

    def allocation(self, name: str) -> dict[str, Any]:
        return json.loads(self.get(name).metadata.annotations[ALLOCATION])

    def wait_recorded(self, name: str, timeout: float = 30) -> None:
        """Wait until the pod's allocation annotation names exactly the cores each container
        got: the extender frees what the annotation says when the pod goes."""
        got = {c.name: self.cores(name, c.name) for c in self.get(name).spec.containers}

        def agree() -> bool:
            recorded = {c["name"]: c["cores"] for c in self.allocation(name)["containers"]}
            return recorded == got

        wait_for(f"{name}'s annotation to match its cores {got}", agree, timeout)

    def scheduling_failure(self, name: str) -> str:
        """The latest FailedScheduling message of a pod."""
        events = self.cluster.core.list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.name={name},reason=FailedScheduling"
        ).items

        def when(e: client.CoreV1Event) -> Any:
            return e.last_timestamp or e.event_time or e.metadata.creation_timestamp

        return max(events, key=when).message if events else ""

    def wait_unschedulable(self, name: str, reason: str, timeout: float = 90) -> str:
        seen: list[str] = []

        def check() -> str | None:
            pod = self.get(name)
            assert pod.status.phase == "Pending", f"{name} is {pod.status.phase}, not Pending"
            message = self.scheduling_failure(name)
            seen[:] = [message]
            return message if reason in message else None

        try:
            return wait_for(f"{name} to be refused with {reason!r}", check, timeout)
        except pytest.fail.Exception:
            pytest.fail(f"{name} was not refused with {reason!r}; last message: {seen}")

    def delete(self, *names: str) -> None:
        for name in names:
            self.cluster.core.delete_namespaced_pod(name, self.namespace, grace_period_seconds=0)
        wait_for(f"pods {names} gone", lambda: not any(self._exists(n) for n in names), 120)

    def _exists(self, name: str) -> bool:
        try:
            self.get(name)
        except ApiException as err:
            if err.status == 404:
                return False
            raise
        return True


def restart_component(
    cluster: Cluster, component: str, timeout: float = 120, node: str | None = None
) -> None:
    """Kill every pod of a chart component (on `node` only, where given) and wait until all
    its new pods are ready."""
    selector = f"app.kubernetes.io/component={component}"
    where = f"spec.nodeName={node}" if node else ""

    def pods() -> list[client.V1Pod]:
        return cluster.core.list_namespaced_pod(
            NAMESPACE, label_selector=selector, field_selector=where
        ).items

    old = {p.metadata.uid for p in pods()}
    assert old, f"no {component} pods" + (f" on {node}" if node else "")
    cluster.core.delete_collection_namespaced_pod(
        NAMESPACE, label_selector=selector, field_selector=where
    )

    def replaced() -> bool:
        now = pods()
        return bool(now) and all(
            p.metadata.uid not in old
            and p.status.phase == "Running"
            and all(c.ready for c in p.status.container_statuses or [])
            for p in now
        )

    wait_for(f"{component} pods replaced and ready", replaced, timeout)


def quiet(cluster: Cluster) -> None:
    """Wait until every Neuron node offers all it has: what earlier tests held is released and
    the kubelet has posted it."""

    def all_free() -> bool:
        for node in cluster.core.list_node().items:
            if is_dra_node(node):
                continue
            cap, alloc = node.status.capacity or {}, node.status.allocatable or {}
            for r in (NEURON, NEURONCORE):
                if cap.get(r, "0") != "0" and cap.get(r) != alloc.get(r):
                    return False
        return True

    wait_for("Neuron allocatable back to capacity on every node", all_free, 180, 2)


@pytest.fixture
def pods(cluster: Cluster) -> Iterator[Pods]:
    """Test pods in a fresh namespace, deleted (and their cores freed) after the test. Starts
    once the cluster is quiet, so that a test sees all the capacity there is."""
    if KIND_CLUSTER:
        quiet(cluster)
    ns = f"e2e-{uuid.uuid4().hex[:8]}"
    cluster.core.create_namespace({"metadata": {"name": ns}})
    try:
        yield Pods(cluster, ns)
    finally:
        cluster.core.delete_collection_namespaced_pod(ns, grace_period_seconds=0)
        wait_for(
            f"namespace {ns} pods gone", lambda: not cluster.core.list_namespaced_pod(ns).items, 120
        )
        cluster.core.delete_namespace(ns)


def contiguous(ids: list[int]) -> bool:
    return ids == list(range(ids[0], ids[0] + len(ids))) if ids else False


def devices_of(cores: list[int], cores_per_device: int) -> list[int]:
    return sorted({c // cores_per_device for c in cores})


def valid_on(instance_type: str, cores: list[int]) -> bool:
    """The set obeys the instance type's rule: trn1.32xlarge devices lie in one aligned block
    of 1, 4, 8 or 16 devices; ring types only need contiguity (already checked)."""
    if instance_type not in ("trn1.32xlarge", "trn1n.32xlarge"):
        return True
    devs = devices_of(cores, 2)
    span = len(devs)
    block = next(b for b in (1, 4, 8, 16) if b >= span)
    return devs[0] // block == devs[-1] // block


def plugin_sockets(host: Any) -> dict[str, list[str]]:
    """The plugin's socket files on a node (testinfra host), by stem; only sockets count."""
    listing = host.check_output(f"find {PLUGIN_DIR} -maxdepth 1 -type s -printf '%f\\n'")
    out: dict[str, list[str]] = {stem: [] for stem in SOCKET_STEMS}
    for name in sorted(listing.split()):
        stem, _, suffix = name.rpartition("-")
        if stem in out and len(suffix) == len("01234567.sock") and suffix.endswith(".sock"):
            out[stem].append(name)
    return out
