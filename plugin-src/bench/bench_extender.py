"""Benchmark of the Neuron scheduler extender (not a test).

1. Latency over HTTP (NodeNames mode, keep-alive, as kube-scheduler calls it) of filter and
   prioritize at 100, 1,000 and 5,000 mixed Neuron nodes with some usage, and of bind. The
   API server is the fake one of the unit tests (tests/unit/extender/extender_fakeapi.py) on
   127.0.0.1, so bind latency is the extender's own work plus two local HTTP round trips
   (merge-patch, Binding), not a real API server's.
2. Allocation quality (extender_quality.py) on seeded random streams of arrivals and
   departures over a cluster of mixed Neuron nodes: the share of cores in use when the first
   request is refused, ours against a baseline of kube-scheduler's default spreading plus a
   first-fit extender.

Run from the repository root with the unit-test virtualenv:

    python plugin-src/bench/bench_extender.py            # everything
    python plugin-src/bench/bench_extender.py --quick    # smaller, for a smoke run
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
# The unit tests' fake API server and object builders (and the polling helper they share).
sys.path[:0] = [str(REPO / "tests" / "unit" / "extender"), str(REPO / "tests" / "unit")]

from extender_fakeapi import FakeApiServer  # noqa: E402
from extender_helpers import make_node, make_pod  # noqa: E402  (realistic objects)
from extender_quality import bench_quality  # noqa: E402
from neuron_k8s.allocator import (  # noqa: E402
    NoFit,
    Request,
    Resource,
    choose_all,
    mask,
)
from neuron_k8s.pods import ContainerAllocation, allocation_annotations  # noqa: E402
from neuron_k8s.topology import shape_for  # noqa: E402

CORE = Resource.NEURONCORE
DEV = Resource.NEURON

# Node mix of the latency cluster: (instance type, share).
LATENCY_MIX = [
    ("inf2.48xlarge", 0.3),
    ("trn1.32xlarge", 0.3),
    ("inf2.24xlarge", 0.2),
    ("inf1.6xlarge", 0.1),
    ("inf2.xlarge", 0.1),
]
# Pod kinds: (resource, count) per container.
POD_KINDS: list[list[tuple[Resource, int]]] = [
    [(CORE, 1)],
    [(CORE, 2)],
    [(CORE, 4)],
    [(DEV, 1)],
    [(DEV, 4)],
    [(CORE, 8)],
    [(CORE, 2), (CORE, 1)],
]


def go_json(doc: Any) -> bytes:
    """JSON as Go's json.Marshal writes it (kube-scheduler's encoder): compact."""
    return json.dumps(doc, separators=(",", ":")).encode()


def pct(values: Sequence[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def ms(x: float) -> str:
    return f"{x * 1000:7.2f} ms"


# --- latency ----------------------------------------------------------------------------------
def _pod_json(name: str, kind: list[tuple[Resource, int]]) -> dict[str, Any]:
    return make_pod(name, [(f"c{i}", {r.value: str(n)}) for i, (r, n) in enumerate(kind)])


def populate(api: FakeApiServer, n: int, rng: random.Random) -> list[str]:
    """n nodes of the mix; about 60% carry one to three running pods with valid sets."""
    names = []
    types = [t for t, _ in LATENCY_MIX]
    weights = [w for _, w in LATENCY_MIX]
    pods = 0
    for i in range(n):
        itype = rng.choices(types, weights)[0]
        name = f"node-{i:05d}"
        names.append(name)
        api.cluster.put("nodes", make_node(name, itype, unhealthy="1" if i % 97 == 0 else None))
        if rng.random() > 0.6:
            continue
        shape = shape_for(itype)
        used = 0
        for _ in range(rng.randint(1, 3)):
            req = Request(CORE, rng.choice([1, 2, 2, 4]))
            try:
                (p,) = choose_all(shape, [req], used, 0)
            except NoFit:
                break
            used |= mask(p.cores)
            pod = make_pod(f"run-{pods}", [("main", {CORE.value: str(req.count)})])
            pod["metadata"]["annotations"].update(
                allocation_annotations(name, [ContainerAllocation("main", p)], 1)
            )
            pod["spec"]["nodeName"] = name
            pod["status"]["phase"] = "Running"
            api.cluster.put("pods", pod)
            pods += 1
    return names


class Conn:
    """One keep-alive connection, as kube-scheduler's HTTP client keeps."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def post(self, verb: str, body: bytes) -> tuple[float, Any]:
        start = time.perf_counter()
        self.conn.request("POST", f"/{verb}", body, {"Content-Type": "application/json"})
        resp = self.conn.getresponse()
        data = resp.read()
        elapsed = time.perf_counter() - start
        if resp.status != 200:
            raise RuntimeError(f"{verb}: HTTP {resp.status}: {data[:200]!r}")
        return elapsed, json.loads(data)


class ExtenderProcess:
    """The real console script in its own process (its own GIL, as in a cluster), pointed at
    the fake API server by a kubeconfig."""

    def __init__(self, api_url: str, workdir: Path, stdlib_json: bool = False) -> None:
        kubeconfig = workdir / "kubeconfig"
        kubeconfig.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "bench",
                    "clusters": [{"name": "bench", "cluster": {"server": api_url}}],
                    "users": [{"name": "bench", "user": {"token": "bench"}}],
                    "contexts": [
                        {"name": "bench", "context": {"cluster": "bench", "user": "bench"}}
                    ],
                }
            )
        )
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        # The console script's entry point; with stdlib_json, as if orjson were not installed.
        hide = "import sys; sys.modules['orjson'] = None; " if stdlib_json else ""
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"{hide}import sys; from neuron_k8s.extender.cli import main; sys.exit(main())",
                "--kubeconfig",
                str(kubeconfig),
                "--address",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
        )

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/readyz")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("extender not ready")

    def cpu_seconds(self) -> float:
        """User + system CPU the extender process has used (Linux /proc)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(10)


def bench_latency(
    sizes: list[int], rounds: int, binds: int, stdlib_json: bool, cpu_rounds: int = 200
) -> None:
    print("== latency over HTTP on 127.0.0.1 (NodeNames mode, keep-alive) ==")
    print(f"   {rounds} filter and {rounds} prioritize calls per size with mixed pod kinds, one")
    print("   bind every third call so usage keeps changing; prioritize gets the nodes filter")
    print("   passed, as kube-scheduler sends them. 'first' is the first call for a pod kind")
    print("   (every node class judged once), kept out of the steady-state figures.")
    print("   The extender runs as its console script in its own process; the fake API server")
    print("   and this client share the benchmark process.")
    print(f"   JSON in the extender: {'json (stdlib)' if stdlib_json else _json_library()}")
    for n in sizes:
        rng = random.Random(n)
        api = FakeApiServer().start()
        with tempfile.TemporaryDirectory() as tmp:
            names = populate(api, n, rng)
            proc = ExtenderProcess(api.url, Path(tmp), stdlib_json)
            try:
                proc.wait_ready(300)
                conn = Conn(proc.port)
                first: list[float] = []
                first_prio: list[float] = []
                filt: list[float] = []
                prio: list[float] = []
                seen: set[int] = set()
                for i in range(rounds):
                    k = i % len(POD_KINDS)
                    pod = _pod_json(f"bench-{n}-{i}", POD_KINDS[k])
                    body = go_json({"Pod": pod, "Nodes": None, "NodeNames": names})
                    t, result = conn.post("filter", body)
                    (filt if k in seen else first).append(t)
                    if not result["NodeNames"]:
                        seen.add(k)
                        continue
                    feasible = {"Pod": pod, "Nodes": None, "NodeNames": result["NodeNames"]}
                    t, scores = conn.post("prioritize", go_json(feasible))
                    (prio if k in seen else first_prio).append(t)
                    seen.add(k)
                    if i % 3 == 0:
                        best = max(scores, key=lambda s: s["Score"])["Host"]
                        api.cluster.put("pods", pod)
                        conn.post(
                            "bind",
                            go_json(
                                {
                                    "PodName": pod["metadata"]["name"],
                                    "PodNamespace": "default",
                                    "PodUID": pod["metadata"]["uid"],
                                    "Node": best,
                                }
                            ),
                        )
                server_side = scrape_filter_seconds(proc.port)
                # CPU per filter, which machine load does not inflate as it does wall time.
                body = go_json(
                    {"Pod": _pod_json("cpu", POD_KINDS[1]), "Nodes": None, "NodeNames": names}
                )
                before = proc.cpu_seconds()
                for _ in range(cpu_rounds):
                    conn.post("filter", body)
                cpu = (proc.cpu_seconds() - before) / cpu_rounds
                bind_t = bench_bind(api, conn, names, binds)
            finally:
                proc.stop()
                api.stop()
        print(
            f"{n:>6} nodes: filter p50 {ms(statistics.median(filt))} p99 {ms(pct(filt, 99))}"
            f" | prioritize p50 {ms(statistics.median(prio))} p99 {ms(pct(prio, 99))}"
            f" | first of a kind: filter max {ms(max(first))}, prioritize max"
            f" {ms(max(first_prio, default=0))}"
            f" | bind p50 {ms(statistics.median(bind_t))} p99 {ms(pct(bind_t, 99))}"
        )
        print(f"{'':>14}filter inside the extender (its own histogram): {server_side}")
        print(f"{'':>14}extender CPU per filter (user+system, {cpu_rounds} calls): {ms(cpu)}")


def scrape_filter_seconds(port: int) -> str:
    """Mean and bucket shares of filter as the extender itself timed it (no HTTP transfer)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    values = {}
    for line in text.splitlines():
        if line.startswith("neuron_extender_request_duration_seconds") and 'verb="filter"' in line:
            key, value = line.rsplit(" ", 1)
            values[key] = float(value)
    base = "neuron_extender_request_duration_seconds"
    count = values[f'{base}_count{{verb="filter"}}']
    mean = values[f'{base}_sum{{verb="filter"}}'] / count
    shares = []
    for le in ("0.0025", "0.005", "0.01"):
        within = values[f'{base}_bucket{{le="{le}",verb="filter"}}']
        shares.append(f"<= {float(le) * 1000:g} ms: {within / count:.1%}")
    return f"mean {mean * 1000:.2f} ms, " + ", ".join(shares)


def bench_bind(api: FakeApiServer, conn: Conn, names: list[str], count: int) -> list[float]:
    """Bind latency: filter first (as kube-scheduler does; it leaves the pod in the extender's
    cache), then time the bind alone: reservation, merge-patch and Binding POST."""
    times = []
    for i in range(count):
        pod = _pod_json(f"bind-{i}", [(CORE, 1)])
        api.cluster.put("pods", pod)
        body = go_json({"Pod": pod, "Nodes": None, "NodeNames": names[:50]})
        _, result = conn.post("filter", body)
        if not result["NodeNames"]:
            continue
        t, answer = conn.post(
            "bind",
            go_json(
                {
                    "PodName": pod["metadata"]["name"],
                    "PodNamespace": "default",
                    "PodUID": pod["metadata"]["uid"],
                    "Node": result["NodeNames"][0],
                }
            ),
        )
        if answer["Error"]:
            raise RuntimeError(answer["Error"])
        times.append(t)
    return times


# --- allocation quality -----------------------------------------------------------------------


def _json_library() -> str:
    try:
        import orjson  # noqa: F401
    except ImportError:
        return "json (stdlib; orjson not installed)"
    return "orjson"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="100,1000,5000", help="node counts (default %(default)s)")
    p.add_argument("--rounds", type=int, default=300, help="filter calls per size")
    p.add_argument("--binds", type=int, default=200, help="timed binds per size")
    p.add_argument("--seeds", type=int, default=20, help="quality seeds")
    p.add_argument("--quick", action="store_true", help="small run")
    p.add_argument("--skip-latency", action="store_true")
    p.add_argument("--skip-quality", action="store_true")
    p.add_argument(
        "--stdlib-json", action="store_true", help="run the extender as if orjson were missing"
    )
    args = p.parse_args()
    if args.quick:
        args.sizes, args.rounds, args.binds, args.seeds = "100,1000", 60, 30, 5
    ok = True
    if not args.skip_latency:
        bench_latency(
            [int(s) for s in args.sizes.split(",")], args.rounds, args.binds, args.stdlib_json
        )
    if not args.skip_quality:
        ok = bench_quality(args.seeds)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
