"""Scale benchmark (not a test): Neuron pods through the real kube-scheduler on thousands of
Node objects, plain and as my-scheduler with the extender, side by side.

For each size, two runs on fresh control planes (scale_cluster.py: etcd and kube-apiserver on
127.0.0.1, no kubelets):
  plain     kube-scheduler, which only counts the extended resources: the ceiling;
  extender  kube-scheduler with the chart's rendered KubeSchedulerConfiguration (urlPrefix
            pointed at a local extender process, plain HTTP) and the extender.
The scheduler starts first; the pods are then created as fast as 8 connections allow, and
each pod's time from its creation to its binding is taken from a watch. Afterwards the
extender's filter and prioritize are replayed at the same size to price one call, against
the floor of decoding and encoding the same JSON with orjson. The extender run ends with the
outcome check (scale_outcome.py); the exit status is 1 when it finds anything wrong.

    python plugin-src/bench/bench_scale.py               # 500 and 5,000 nodes
    python plugin-src/bench/bench_scale.py --quick       # 200 nodes, 1,000 pods
    python plugin-src/bench/bench_scale.py --nodes 2000 --pods 4000 --mix devices

Needs cluster/.cache/bin (etcd, kube-apiserver, kube-scheduler; built when missing), helm on
PATH (.tools/bin) and the package installed (`pip install ./plugin-src orjson`).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "unit"))
from scale_cluster import (
    KUBERNETES_VERSION,
    REPO,
    ControlPlane,
    Process,
    binaries,
    create_all,
    free_port,
    node_body,
)
from scale_measure import NAMESPACE, Result, measure
from scale_outcome import problems
from scale_profile import profile_summary, rss_sampler, start_profile
from scale_replay import replay

# Node kinds by share (their cores: 24, 12, 2, 32, 2), and pod kinds per mix by share.
NODE_MIX = [
    ("inf2.48xlarge", 30),
    ("inf2.24xlarge", 20),
    ("inf2.xlarge", 10),
    ("trn1.32xlarge", 35),
    ("trn1.2xlarge", 5),
]
CORE, DEVICE = "aws.amazon.com/neuroncore", "aws.amazon.com/neuron"
POD_MIXES = {
    "cores": [((CORE, 1), 50), ((CORE, 2), 35), ((CORE, 4), 15)],
    "devices": [((DEVICE, 1), 60), ((DEVICE, 2), 25), ((DEVICE, 4), 15)],
    "mixed": [
        ((CORE, 1), 40),
        ((CORE, 2), 25),
        ((CORE, 4), 10),
        ((DEVICE, 1), 20),
        ((DEVICE, 4), 5),
    ],
}
SIZES = [(500, 4000), (5000, 10000)]


def weighted(rng: random.Random, kinds: list[tuple[Any, int]], n: int) -> list[Any]:
    return rng.choices([k for k, _ in kinds], weights=[w for _, w in kinds], k=n)


def node_types(count: int) -> dict[str, str]:
    kinds = weighted(random.Random(7), NODE_MIX, count)
    return {f"node-{i:05d}": kind for i, kind in enumerate(kinds)}


def pod_body(name: str, scheduler: str, resource: str, count: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "schedulerName": scheduler,
            "containers": [
                {
                    "name": "c0",
                    "image": "bench",
                    "resources": {
                        "requests": {"cpu": "10m", "memory": "16Mi"},
                        "limits": {resource: str(count)},
                    },
                }
            ],
        },
    }


def pod_bodies(scheduler: str, kinds: list[tuple[str, int]]) -> list[dict[str, Any]]:
    return [pod_body(f"p-{i:05d}", scheduler, r, n) for i, (r, n) in enumerate(kinds)]


def scheduler_config(kubeconfig: Path, qps: int, extender_port: int | None) -> dict[str, Any]:
    """Plain: one profile. With the extender: the chart's own configuration (rendered by helm
    with this project's implementation and plain HTTP), pointed at the local extender."""
    connection = {"kubeconfig": str(kubeconfig), "qps": qps, "burst": qps}
    if extender_port is None:
        return {
            "apiVersion": "kubescheduler.config.k8s.io/v1",
            "kind": "KubeSchedulerConfiguration",
            "clientConnection": connection,
            "leaderElection": {"leaderElect": False},
            "profiles": [{"schedulerName": "bench-plain"}],
        }
    chart = ["neuron", str(REPO / "charts" / "neuron"), "--kube-version", KUBERNETES_VERSION]
    values = ["--set", "implementation=neuron-k8s", "--set", "extender.tls.mode=disabled"]
    rendered = subprocess.run(
        ["helm", "template", *chart, *values],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    (cm,) = [d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "ConfigMap"]
    (text,) = cm["data"].values()
    config = yaml.safe_load(text)
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
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            "--v=0",
        ],
        plane.workdir,
    )
    plane.processes.append(proc)
    _wait_https_ok(port, proc)
    return proc


def _wait_https_ok(port: int, proc: Process, timeout: float = 60) -> None:
    import http.client
    import ssl

    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=2, context=ctx)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
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
    import urllib.request

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


def plain_run(plane: ControlPlane, args: argparse.Namespace, result: Result, kinds: list) -> None:
    start_scheduler(plane, scheduler_config(plane.kubeconfig, args.qps, None), "plain")
    measure(plane, result, pod_bodies("bench-plain", kinds))


def extender_run(
    plane: ControlPlane, args: argparse.Namespace, result: Result, kinds: list, types: dict
) -> str:
    extender, port = start_extender(plane)
    start_scheduler(plane, scheduler_config(plane.kubeconfig, args.qps, port), "my-scheduler")
    before, cpu0 = plane.request_counts(), extender.cpu_seconds()
    peak = [0.0]
    sampler = rss_sampler(extender.pid, peak)
    profiler = start_profile(extender.pid, plane.workdir) if args.profile else None
    measure(plane, result, pod_bodies("my-scheduler", kinds))
    sampler.set()
    if profiler is not None:
        result.profile = profile_summary(profiler, plane.workdir)
    result.extender_cpu = extender.cpu_seconds() - cpu0
    result.extender_rss_mib = peak[0] / 1024
    after = plane.request_counts()
    result.api_requests = {
        v: n - before.get(v, 0) for v, n in after.items() if n > before.get(v, 0)
    }
    listed = plane.client().get(f"/api/v1/namespaces/{NAMESPACE}/pods")["items"]
    result.checked, result.wrong = problems(types, listed)
    return replay(port, extender, list(types), kinds)


def run_size(args: argparse.Namespace, nodes: int, pods: int, workroot: Path) -> bool:
    types = node_types(nodes)
    kinds = weighted(random.Random(11), POD_MIXES[args.mix], pods)
    results, floor = {}, ""
    for name in ("plain", "extender"):
        plane = ControlPlane(Path(tempfile.mkdtemp(prefix=f"{name}-", dir=workroot))).start()
        try:
            create_all(plane, "/api/v1/nodes", [node_body(n, t) for n, t in types.items()])
            result = results[name] = Result(name, pods)
            if name == "plain":
                plain_run(plane, args, result, kinds)
            else:
                floor = extender_run(plane, args, result, kinds, types)
        finally:
            plane.stop()
    report(nodes, pods, args.mix, results, floor)
    return not results["extender"].wrong


def report(nodes: int, pods: int, mix: str, results: dict[str, Result], floor: str) -> None:
    plain, ext = results["plain"], results["extender"]
    print(f"\n== {nodes} nodes, {pods} pods ({mix})")
    print("| run | bound | pods/s | steady pods/s | p50 ms | p99 ms |")
    print("|---|---|---|---|---|---|")
    for r in (plain, ext):
        print(
            f"| {r.name} | {r.bound}/{r.pods} | {r.rate:.0f} | {r.steady:.0f} | "
            f"{1000 * r.percentile(0.5):.0f} | {1000 * r.percentile(0.99):.0f} |"
        )
    print("CPU ms per bound pod, by process:")
    names = sorted(set(plain.cpu) | set(ext.cpu), key=lambda n: -ext.cpu.get(n, 0.0))
    for r in (plain, ext):
        cells = ", ".join(
            f"{n} {1000 * r.cpu.get(n, 0.0) / max(r.bound, 1):.2f}" for n in names if n in r.cpu
        )
        total = 1000 * sum(r.cpu.values()) / max(r.bound, 1)
        print(f"  {r.name}: {cells}; total {total:.2f}")
    ratio = ext.rate / plain.rate if plain.rate else 0.0
    steady = ext.steady / plain.steady if plain.steady else 0.0
    print(f"ratio with extender / plain: {ratio:.2f} overall, {steady:.2f} steady")
    per_pod = 1000 * ext.extender_cpu / ext.bound if ext.bound else 0.0
    print(
        f"extender: {ext.extender_cpu:.1f} CPU s ({per_pod:.2f} ms per pod), "
        f"peak RSS {ext.extender_rss_mib:.0f} MiB"
    )
    print(f"API requests during the extender run: {json.dumps(ext.api_requests, sort_keys=True)}")
    print(floor)
    if ext.profile:
        print(ext.profile)
    print(f"outcome: {ext.checked} bound pods checked, {len(ext.wrong)} problems")
    for line in ext.wrong[:20]:
        print(f"  {line}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, help="one size: this many nodes (with --pods)")
    p.add_argument("--pods", type=int, default=None, help="pods of that size")
    p.add_argument("--mix", choices=sorted(POD_MIXES), default="mixed")
    p.add_argument("--qps", type=int, default=5000, help="both schedulers' API client qps/burst")
    p.add_argument("--quick", action="store_true", help="200 nodes, 1,000 pods")
    p.add_argument("--keep", action="store_true", help="keep the run directories (logs)")
    p.add_argument("--profile", action="store_true", help="sample the extender with py-spy")
    args = p.parse_args()
    if args.quick:
        sizes = [(200, 1000)]
    elif args.nodes:
        sizes = [(args.nodes, args.pods or 2 * args.nodes)]
    else:
        sizes = SIZES
    workroot = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    ok = True
    try:
        for nodes, pods in sizes:
            ok = run_size(args, nodes, pods, workroot) and ok
    finally:
        if args.keep:
            print(f"logs kept in {workroot}")
        else:
            shutil.rmtree(workroot, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
