"""The processes under test in bench_scale.py: kube-scheduler (plain, or as my-scheduler with
the chart's own configuration and the extender) and the extender, on a ControlPlane."""

from __future__ import annotations

import http.client
import shutil
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from scale_cluster import KUBERNETES_VERSION, REPO, ControlPlane, Process, binaries, free_port
from scale_tools import helm


def scheduler_config(
    kubeconfig: Path, qps: int, extender_port: int | None, name: str = "bench-plain"
) -> dict[str, Any]:
    """Plain: one profile, `name`. With the extender: the chart's own configuration (rendered
    by helm with this project's implementation and plain HTTP), pointed at the local extender."""
    connection = {"kubeconfig": str(kubeconfig), "qps": qps, "burst": qps}
    if extender_port is None:
        return {
            "apiVersion": "kubescheduler.config.k8s.io/v1",
            "kind": "KubeSchedulerConfiguration",
            "clientConnection": connection,
            "leaderElection": {"leaderElect": False},
            "profiles": [{"schedulerName": name}],
        }
    chart = ["neuron", str(REPO / "charts" / "neuron"), "--kube-version", KUBERNETES_VERSION]
    values = ["--set", "implementation=neuron-k8s", "--set", "extender.tls.mode=disabled"]
    # Only the scheduler's configuration is used: no image is pulled, none needs a registry.
    values += [
        "--set",
        "devicePlugin.image.pullPolicy=Never",
        "--set",
        "extender.image.pullPolicy=Never",
    ]
    rendered = subprocess.run(
        [helm(), "template", *chart, *values],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    (cm,) = [d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "ConfigMap"]
    (text,) = cm["data"].values()
    config: dict[str, Any] = yaml.safe_load(text)
    config["clientConnection"] = connection
    config["leaderElection"] = {"leaderElect": False}
    config["extenders"][0]["urlPrefix"] = f"http://127.0.0.1:{extender_port}"
    return config


def start_scheduler(plane: ControlPlane, config: dict[str, Any], name: str) -> Process:
    path = plane.workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    proc = Process(
        name,
        [
            str(binaries("kube-scheduler")["kube-scheduler"]),
            f"--config={path}",
            f"--authentication-kubeconfig={plane.kubeconfig}",
            f"--authorization-kubeconfig={plane.kubeconfig}",
            "--authentication-skip-lookup",
            "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            "--v=0",
        ],
        plane.workdir,
    )
    proc.port = port
    plane.processes.append(proc)
    wait_https_ok(port, proc)
    return proc


def https_get(port: int, path: str, timeout: float = 10) -> tuple[int, str]:
    """GET over HTTPS from a component's secure port (its self-signed certificate)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=ctx)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        conn.close()


def attempts(port: int) -> str:
    """kube-scheduler's scheduling attempts so far, by result (scheduled, unschedulable,
    error): more than one a pod is the queue retrying."""
    counts: dict[str, int] = {}
    for line in https_get(port, "/metrics")[1].splitlines():
        if line.startswith("scheduler_schedule_attempts_total{"):
            labels, value = line.rsplit(" ", 1)
            result = labels.split('result="', 1)[1].split('"', 1)[0]
            counts[result] = counts.get(result, 0) + int(float(value))
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))


def dra_filter(port: int) -> str:
    """The DynamicResources plugin's Filter (one claim tried on one node: where the allocator
    runs), mean ms per call by status; kube-scheduler samples 10 % of its cycles for this."""
    sums: dict[str, list[float]] = {}
    for line in https_get(port, "/metrics")[1].splitlines():
        if not line.startswith("scheduler_plugin_execution_duration_seconds_"):
            continue
        if 'plugin="DynamicResources"' not in line or 'extension_point="Filter"' not in line:
            continue
        labels, value = line.rsplit(" ", 1)
        status = labels.split('status="', 1)[1].split('"', 1)[0]
        cell = sums.setdefault(status, [0.0, 0.0])
        if labels.startswith("scheduler_plugin_execution_duration_seconds_sum"):
            cell[0] += float(value)
        elif labels.startswith("scheduler_plugin_execution_duration_seconds_count"):
            cell[1] += float(value)
    return ", ".join(
        f"{k} {1000 * t / n:.2f} ms ({n:.0f} sampled)" for k, (t, n) in sorted(sums.items()) if n
    )


def wait_https_ok(port: int, proc: Process, timeout: float = 60, path: str = "/healthz") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if https_get(port, path, timeout=2)[0] == 200:
                return
        except OSError:
            pass
        if proc.proc.poll() is not None:
            break
        time.sleep(0.3)
    raise SystemExit(f"{proc.name} did not get ready\n{proc.tail()}")


def start_extender(plane: ControlPlane) -> tuple[Process, int]:
    port, http_port = free_port(), free_port()
    exe = shutil.which("neuron-scheduler-extender") or str(
        Path(sys.executable).parent / "neuron-scheduler-extender"
    )
    proc = Process(
        "extender",
        [
            exe,
            f"--kubeconfig={plane.kubeconfig}",
            "--address=127.0.0.1",
            f"--port={port}",
            f"--http-port={http_port}",
            "--scheduler-name=my-scheduler",
            "--log-level=warning",
        ],
        plane.workdir,
    )
    plane.processes.append(proc)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return proc, port
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"the extender did not get ready\n{proc.tail()}")
