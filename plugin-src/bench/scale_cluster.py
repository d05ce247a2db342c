"""A control plane on 127.0.0.1 for bench_scale.py: etcd and the current release's
kube-apiserver (scale_tools.py finds or builds them), no kubelets, no controller-manager (the
DRA run adds one with the ResourceClaim controller only). Nodes are API objects with the status
a Neuron node's kubelet and device plugin would post.

Authentication is one static admin token and authorization AlwaysAllow: this is a throwaway
server on loopback, for measuring a scheduler, not a cluster.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml
from scale_tools import KUBERNETES_VERSION, REPO, binaries

sys.path[:0] = [str(REPO / "plugin-src" / "src")]

from neuron_k8s.kube import KubeClient  # noqa: E402
from neuron_k8s.topology import shape_for  # noqa: E402

__all__ = ["KUBERNETES_VERSION", "REPO", "binaries"]

INSTANCE_TYPE = "node.kubernetes.io/instance-type"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Process:
    """A child process with its log in the run's directory; stopped on exit."""

    def __init__(self, name: str, args: Sequence[str], workdir: Path) -> None:
        self.name = name
        self.log = workdir / f"{name}.log"
        self.port = 0  # its secure port, for those that serve one
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(
                list(args), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_seconds(self) -> float:
        """User plus system CPU time so far (Linux /proc)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


class ControlPlane:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.token = uuid.uuid4().hex
        self.port = free_port()
        self.kubeconfig = workdir / "kubeconfig"
        self.processes: list[Process] = []

    def start(self) -> ControlPlane:
        bins = binaries("etcd", "kube-apiserver", "kube-scheduler")
        etcd_port, peer_port = free_port(), free_port()
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        self.processes.append(
            Process(
                "etcd",
                [
                    str(bins["etcd"]),
                    f"--data-dir={self.workdir / 'etcd'}",
                    f"--listen-client-urls={etcd_url}",
                    f"--advertise-client-urls={etcd_url}",
                    f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                    f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                    f"--initial-cluster=default=http://127.0.0.1:{peer_port}",
                    "--quota-backend-bytes=8589934592",
                    "--unsafe-no-fsync",
                    "--log-level=warn",
                ],
                self.workdir,
            )
        )
        key = self.workdir / "sa.key"
        subprocess.run(
            ["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True
        )
        (self.workdir / "tokens.csv").write_text(f'{self.token},admin,admin,"system:masters"\n')
        self.processes.append(
            Process(
                "kube-apiserver",
                [
                    str(bins["kube-apiserver"]),
                    f"--etcd-servers={etcd_url}",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={self.port}",
                    f"--cert-dir={self.workdir / 'certs'}",
                    f"--token-auth-file={self.workdir / 'tokens.csv'}",
                    "--authorization-mode=AlwaysAllow",
                    "--service-account-issuer=https://kubernetes.default.svc",
                    f"--service-account-key-file={key}",
                    f"--service-account-signing-key-file={key}",
                    "--service-cluster-ip-range=10.0.0.0/16",
                    # No controller-manager makes the namespaces' default service accounts or
                    # lifts the not-ready taint this plugin puts on every new node.
                    "--disable-admission-plugins=ServiceAccount,TaintNodesByCondition",
                    "--max-requests-inflight=3000",
                    "--max-mutating-requests-inflight=1000",
                    "--enable-priority-and-fairness=false",
                    "--v=0",
                ],
                self.workdir,
            )
        )
        self.kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "bench",
                            "cluster": {
                                "server": f"https://127.0.0.1:{self.port}",
                                "insecure-skip-tls-verify": True,
                            },
                        }
                    ],
                    "users": [{"name": "admin", "user": {"token": self.token}}],
                    "contexts": [
                        {"name": "bench", "context": {"cluster": "bench", "user": "admin"}}
                    ],
                    "current-context": "bench",
                }
            )
        )
        self._wait_ready()
        return self

    def client(self) -> KubeClient:
        client = KubeClient.from_config(str(self.kubeconfig), timeout=60)
        assert client is not None
        return client

    def _wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.raw_get("/readyz") == "ok":
                    self.client().get("/api/v1/namespaces/default")
                    return
            except Exception:
                pass
            time.sleep(0.5)
        logs = "\n".join(f"--- {p.name}\n{p.tail()}" for p in self.processes)
        raise SystemExit(f"the control plane did not come up in {timeout:.0f} s\n{logs}")

    def stop(self) -> None:
        for p in reversed(self.processes):
            p.stop()

    def raw_get(self, path: str) -> str:
        """A plain-text GET (health, metrics), which the JSON client does not read."""
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=30, context=ctx)
        try:
            conn.request("GET", path, headers={"Authorization": f"Bearer {self.token}"})
            return conn.getresponse().read().decode()
        finally:
            conn.close()

    def request_counts(self) -> dict[str, int]:
        """apiserver_request_total summed by verb."""
        counts: dict[str, int] = {}
        for line in self.raw_get("/metrics").splitlines():
            if not line.startswith("apiserver_request_total{"):
                continue
            labels, value = line.rsplit(" ", 1)
            verb = labels.split('verb="', 1)[1].split('"', 1)[0]
            counts[verb] = counts.get(verb, 0) + int(float(value))
        return counts


def node_body(name: str, instance_type: str) -> dict[str, Any]:
    """A Neuron node as its kubelet and device plugin leave it: Ready, labelled, with the
    devices and cores the plugin advertises."""
    shape = shape_for(instance_type)
    capacity = {
        "cpu": "192",
        "memory": "768Gi",
        "pods": "110",
        "aws.amazon.com/neuron": str(shape.devices),
        "aws.amazon.com/neuroncore": str(shape.cores),
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                INSTANCE_TYPE: instance_type,
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
            },
        },
        "status": {
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
        },
    }


def create_all(plane: ControlPlane, path: str, bodies: Sequence[dict[str, Any]]) -> None:
    """POST every body, over 8 connections."""

    client = plane.client()  # one connection per thread

    def post(chunk: Sequence[dict[str, Any]]) -> None:
        for body in chunk:
            client.post(path, body)

    chunks = [bodies[i::8] for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(post, chunks))
