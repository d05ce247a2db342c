"""Prometheus on the host, for tests/e2e/test_31_metrics_prometheus.py: built from the Go module
proxy (scripts/build-prometheus.sh), scraping every pod behind the chart's metrics Services. The
host cannot reach pod IPs, so each pod (read from the Services' EndpointSlices, followed while
the test runs) is scraped through a `kubectl port-forward` listed in a file_sd file, with
honor_labels as the chart's monitors set it."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import tempfile
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from conftest import NAMESPACE, RELEASE, Cluster, wait_for
from kubernetes import client

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "cluster/.cache/bin/prometheus"
SCRAPE = "2s"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _forward(kubeconfig: str, pod: str, port: int) -> tuple[subprocess.Popen[str], int] | None:
    """`kubectl port-forward` to one pod's port on a free local port (None when it fails: a
    pod going away)."""
    proc = subprocess.Popen(
        [
            *("kubectl", "--kubeconfig", kubeconfig, "-n", NAMESPACE, "port-forward"),
            *(f"pod/{pod}", f":{port}", "--address", "127.0.0.1"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    found = re.search(r"127\.0\.0\.1:(\d+)", proc.stdout.readline())
    if not found:
        proc.kill()
        proc.wait()
        return None
    # kubectl prints a line per connection: drain them, or its pipe fills and it stalls.
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    return proc, int(found.group(1))


def _targets(cluster: Cluster) -> dict[str, list[tuple[str, int]]]:
    """Service name -> (pod, port) of every endpoint of the chart's metrics Services."""
    services = cluster.core.list_namespaced_service(
        NAMESPACE,
        label_selector=f"app.kubernetes.io/instance={RELEASE},neuron.k8s.local/metrics=true",
    ).items
    out: dict[str, list[tuple[str, int]]] = {}
    for svc in services:
        name, port = svc.metadata.name, int(svc.spec.ports[0].target_port)
        slices = client.DiscoveryV1Api().list_namespaced_endpoint_slice(
            NAMESPACE, label_selector=f"kubernetes.io/service-name={name}"
        )
        out[name] = sorted(
            (ep.target_ref.name, port)
            for s in slices.items
            for ep in s.endpoints or []
            if ep.target_ref is not None and ep.target_ref.kind == "Pod"
        )
    return out


class Forwards:
    """Follows the Services' endpoints as kubernetes_sd would: a port-forward per pod, started
    for a new pod (a component restarted by another test), stopped for a gone one, and each
    Service's local addresses in a file_sd file that Prometheus reloads on change."""

    def __init__(self, cluster: Cluster, folder: str) -> None:
        self.cluster = cluster
        self.folder = folder
        self.services = sorted(_targets(cluster))
        self._open: dict[tuple[str, str], tuple[subprocess.Popen[str], int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="port-forwards", daemon=True)
        self.count = 0  # targets written in the last round

    def file(self, service: str) -> str:
        return os.path.join(self.folder, f"{service}.json")

    def sync(self) -> None:
        wanted = {
            (svc, pod): port for svc, eps in _targets(self.cluster).items() for pod, port in eps
        }
        for key in list(self._open):
            proc, _ = self._open[key]
            if key not in wanted or proc.poll() is not None:
                proc.terminate()
                del self._open[key]
        for (svc, pod), port in wanted.items():
            if (svc, pod) not in self._open:
                opened = _forward(self.cluster.kubeconfig, pod, port)
                if opened is not None:
                    self._open[(svc, pod)] = opened
        for svc in self.services:
            local = sorted(f"127.0.0.1:{p}" for (s, _), (_, p) in self._open.items() if s == svc)
            tmp = self.file(svc) + ".tmp"
            Path(tmp).write_text(json.dumps([{"targets": local, "labels": {}}]))
            os.replace(tmp, self.file(svc))
        self.count = len(self._open)

    def _run(self) -> None:
        while not self._stop.wait(2):
            try:
                self.sync()
            except Exception:  # the API restarting: the next round tries again
                continue

    def start(self) -> None:
        self.sync()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        for proc, _ in self._open.values():
            proc.terminate()


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's vector, as the HTTP API answers it."""
        q = urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{q}", timeout=10) as r:
            doc = json.load(r)
        assert doc["status"] == "success", doc
        assert doc["data"]["resultType"] == "vector", doc
        return list(doc["data"]["result"])

    def values(self, expr: str, *keys: str) -> dict[tuple[str, ...], float]:
        return {
            tuple(s["metric"].get(k, "") for k in keys): float(s["value"][1])
            for s in self.query(expr)
        }


@contextlib.contextmanager
def running_prometheus(cluster: Cluster) -> Iterator[Prometheus]:
    """Prometheus on the host scraping every pod behind the chart's metrics Services, once it
    has scraped each of them."""
    subprocess.run(["bash", str(ROOT / "scripts/build-prometheus.sh")], check=True)
    work = tempfile.mkdtemp(prefix="neuron-prometheus-")
    forwards = Forwards(cluster, work)
    proc = None
    try:
        forwards.start()
        jobs = [
            {
                "job_name": svc,
                "honor_labels": True,
                "file_sd_configs": [{"files": [forwards.file(svc)]}],
            }
            for svc in forwards.services
        ]
        config = {
            "global": {"scrape_interval": SCRAPE, "scrape_timeout": SCRAPE},
            "scrape_configs": jobs,
        }
        path = os.path.join(work, "prometheus.yml")
        Path(path).write_text(json.dumps(config))  # JSON is YAML
        port = _free_port()
        log = open(os.path.join(work, "prometheus.log"), "w")  # noqa: SIM115
        proc = subprocess.Popen(
            [
                *(str(PROMETHEUS), f"--config.file={path}", f"--storage.tsdb.path={work}/data"),
                *(f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"),
            ],
            stdout=log,
            stderr=log,
        )
        prom = Prometheus(f"http://127.0.0.1:{port}")

        def all_up() -> bool:
            try:
                up = prom.query("up")
            except OSError:
                return False
            return len(up) == forwards.count > 0 and all(s["value"][1] == "1" for s in up)

        wait_for("Prometheus scraping every metrics endpoint", all_up, 60)
        yield prom
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        forwards.stop()
