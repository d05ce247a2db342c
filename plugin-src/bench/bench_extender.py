"""Benchmark of the Neuron scheduler extender (not a test).

1. Latency over HTTP (NodeNames mode, keep-alive, as kube-scheduler calls it) of filter and
   prioritize at 100, 1,000 and 5,000 mixed Neuron nodes with some usage, and of bind. The
   API server is the fake one of the unit tests (tests/unit/extender/extender_fakeapi.py) on
   127.0.0.1, so bind latency is the extender's own work plus two local HTTP round trips
   (merge-patch, Binding), not a real API server's.
2. Allocation quality on seeded random streams of arrivals and departures over a cluster of
   mixed Neuron nodes: the share of cores in use when the first request is refused, ours
   against a baseline of kube-scheduler's default spreading plus a first-fit extender.

Run from the repository root with the unit-test virtualenv:

    python plugin-src/bench/bench_extender.py            # everything
    python plugin-src/bench/bench_extender.py --quick    # smaller, for a smoke run
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "unit" / "extender"))

from conftest import make_node, make_pod  # noqa: E402  (test builders: realistic objects)
from extender_fakeapi import FakeApiServer  # noqa: E402
from neuron_k8s import allocator  # noqa: E402
from neuron_k8s.allocator import NoFit, Request, Resource, choose_all, mask  # noqa: E402
from neuron_k8s.extender.fit import evaluate  # noqa: E402
from neuron_k8s.pods import ContainerAllocation, allocation_annotations  # noqa: E402
from neuron_k8s.topology import Shape, shape_for  # noqa: E402

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

    def __init__(self, api_url: str, workdir: Path) -> None:
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
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "neuron_k8s.extender.cli",
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

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(10)


def bench_latency(sizes: list[int], rounds: int, binds: int) -> None:
    print("== latency over HTTP on 127.0.0.1 (NodeNames mode, keep-alive) ==")
    print(f"   {rounds} filter and {rounds} prioritize calls per size with mixed pod kinds, one")
    print("   bind every third call so usage keeps changing. 'first' is the first filter of a")
    print("   pod kind (every node class judged once), kept out of the steady-state figures.")
    print("   The extender runs as its console script in its own process; the fake API server")
    print("   and this client share the benchmark process.")
    for n in sizes:
        rng = random.Random(n)
        api = FakeApiServer().start()
        with tempfile.TemporaryDirectory() as tmp:
            names = populate(api, n, rng)
            proc = ExtenderProcess(api.url, Path(tmp))
            try:
                proc.wait_ready(300)
                conn = Conn(proc.port)
                first: list[float] = []
                filt: list[float] = []
                prio: list[float] = []
                seen: set[int] = set()
                for i in range(rounds):
                    k = i % len(POD_KINDS)
                    pod = _pod_json(f"bench-{n}-{i}", POD_KINDS[k])
                    body = json.dumps({"Pod": pod, "Nodes": None, "NodeNames": names}).encode()
                    t, result = conn.post("filter", body)
                    (filt if k in seen else first).append(t)
                    seen.add(k)
                    t, scores = conn.post("prioritize", body)
                    prio.append(t)
                    if i % 3 == 0 and result["NodeNames"]:
                        best = max(scores, key=lambda s: s["Score"])["Host"]
                        api.cluster.put("pods", pod)
                        conn.post(
                            "bind",
                            json.dumps(
                                {
                                    "PodName": pod["metadata"]["name"],
                                    "PodNamespace": "default",
                                    "PodUID": pod["metadata"]["uid"],
                                    "Node": best,
                                }
                            ).encode(),
                        )
                server_side = scrape_filter_seconds(proc.port)
                bind_t = bench_bind(api, conn, names, binds)
            finally:
                proc.stop()
                api.stop()
        print(
            f"{n:>6} nodes: filter p50 {ms(statistics.median(filt))} p99 {ms(pct(filt, 99))}"
            f" | prioritize p50 {ms(statistics.median(prio))} p99 {ms(pct(prio, 99))}"
            f" | first filter of a kind: max {ms(max(first))}"
            f" | bind p50 {ms(statistics.median(bind_t))} p99 {ms(pct(bind_t, 99))}"
        )
        print(f"{'':>14}filter inside the extender (its own histogram): {server_side}")


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
        body = json.dumps({"Pod": pod, "Nodes": None, "NodeNames": names[:50]}).encode()
        _, result = conn.post("filter", body)
        if not result["NodeNames"]:
            continue
        t, answer = conn.post(
            "bind",
            json.dumps(
                {
                    "PodName": pod["metadata"]["name"],
                    "PodNamespace": "default",
                    "PodUID": pod["metadata"]["uid"],
                    "Node": result["NodeNames"][0],
                }
            ).encode(),
        )
        if answer["Error"]:
            raise RuntimeError(answer["Error"])
        times.append(t)
    return times


# --- allocation quality -----------------------------------------------------------------------
QUALITY_MIX = [
    ("inf2.48xlarge", 8),
    ("trn1.32xlarge", 8),
    ("inf2.24xlarge", 8),
    ("inf1.6xlarge", 6),
    ("inf2.xlarge", 6),
]
# (resource, count, weight): requests valid on at least one node type.
ARRIVALS = [
    (CORE, 1, 22),
    (CORE, 2, 18),
    (CORE, 4, 12),
    (CORE, 8, 6),
    (DEV, 1, 12),
    (DEV, 2, 6),
    (DEV, 4, 8),
    (DEV, 8, 5),
    (DEV, 12, 3),
    (DEV, 16, 3),
]
DEPARTURE_SHARE = 0.4
EXTENDER_WEIGHT = 5  # the chart's scheduler.extenderConfig.prioritizeWeight default


@dataclass
class SimNode:
    shape: Shape
    used: int = 0


@dataclass
class Running:
    node: int
    cores: int


def first_fit(shape: Shape, requests: Sequence[Request], used: int) -> list[int] | None:
    """The lowest-index free valid set for each container in turn, like AWS's extender does.
    It enumerates the allocator's own valid sets, so only the choice differs from ours."""
    out = []
    for r in requests:
        for cand in allocator._candidates(shape, r):
            if not cand & used:
                out.append(cand)
                used |= cand
                break
        else:
            return None
    return out


def spread_score(node: SimNode, cores: int) -> float:
    """kube-scheduler's NodeResourcesFit LeastAllocated (0-100), with the pod's cpu and memory
    taken as proportional to its Neuron cores."""
    after = (node.used | cores).bit_count()
    return 100 * (1 - after / node.shape.cores)


def place_ours(
    nodes: list[SimNode], requests: tuple[Request, ...], rng: random.Random
) -> tuple[int, int] | None:
    """filter + prioritize (weighted, added to the spreading score as kube-scheduler sums
    plugin scores) + our set choice at bind."""
    best: list[tuple[float, int]] = []
    for i, node in enumerate(nodes):
        v = evaluate(node.shape, requests, node.used, 0)
        if v.reason is not None:
            continue
        placements = choose_all(node.shape, requests, node.used, 0)
        cores = 0
        for p in placements:
            cores |= mask(p.cores)
        total = v.score * 10 * EXTENDER_WEIGHT + spread_score(node, cores)
        best.append((total, i))
    if not best:
        return None
    top = max(t for t, _ in best)
    i = rng.choice([i for t, i in best if t == top])
    placements = choose_all(nodes[i].shape, requests, nodes[i].used, 0)
    cores = 0
    for p in placements:
        cores |= mask(p.cores)
    return i, cores


def place_baseline(
    nodes: list[SimNode], requests: tuple[Request, ...], rng: random.Random
) -> tuple[int, int] | None:
    """A first-fit filter, no prioritize: kube-scheduler spreads (least allocated), and the
    extender binds the lowest-index free set."""
    best: list[tuple[float, int, int]] = []
    for i, node in enumerate(nodes):
        sets = first_fit(node.shape, requests, node.used)
        if sets is None:
            continue
        cores = 0
        for c in sets:
            cores |= c
        best.append((spread_score(node, 0), i, cores))
    if not best:
        return None
    top = max(t for t, _, _ in best)
    _, i, cores = rng.choice([b for b in best if b[0] == top])
    return i, cores


def simulate(seed: int, place: Callable[..., tuple[int, int] | None]) -> tuple[float, int]:
    """(share of cores in use at the first refusal, arrivals placed before it)."""
    stream = random.Random(seed)
    ties = random.Random(seed + 10_000)
    nodes = [SimNode(shape_for(t)) for t, count in QUALITY_MIX for _ in range(count)]
    total = sum(n.shape.cores for n in nodes)
    kinds = [(r, c) for r, c, _ in ARRIVALS]
    weights = [w for _, _, w in ARRIVALS]
    running: list[Running] = []
    placed = 0
    for _ in range(1_000_000):
        if running and stream.random() < DEPARTURE_SHARE:
            gone = running.pop(stream.randrange(len(running)))
            nodes[gone.node].used &= ~gone.cores
            continue
        resource, count = stream.choices(kinds, weights)[0]
        requests = (Request(resource, count),)
        where = place(nodes, requests, ties)
        if where is None:
            used = sum(n.used.bit_count() for n in nodes)
            return used / total, placed
        i, cores = where
        assert not nodes[i].used & cores
        nodes[i].used |= cores
        running.append(Running(i, cores))
        placed += 1
    raise RuntimeError("no refusal")


def bench_quality(seeds: int) -> bool:
    cluster = ", ".join(f"{c} x {t}" for t, c in QUALITY_MIX)
    total = sum(shape_for(t).cores * c for t, c in QUALITY_MIX)
    print()
    print("== allocation quality: share of cores in use at the first refused request ==")
    print(f"   cluster: {cluster} ({total} cores); arrivals weighted over")
    print(
        "   " + ", ".join(f"{c} {'cores' if r is CORE else 'devices'}:{w}" for r, c, w in ARRIVALS)
    )
    print(
        f"   departures {DEPARTURE_SHARE:.0%} of events; ours = filter + prioritize (weight "
        f"{EXTENDER_WEIGHT}, summed with spreading) + our set choice;"
    )
    print("   baseline = default spreading (least allocated) + first-fit extender")
    print(f"{'seed':>6} {'ours':>8} {'baseline':>9} {'margin':>8} {'placed ours/base':>17}")
    worst = 1.0
    margins = []
    for seed in range(seeds):
        ours, n_ours = simulate(seed, place_ours)
        base, n_base = simulate(seed, place_baseline)
        margin = ours - base
        margins.append(margin)
        worst = min(worst, margin)
        print(f"{seed:>6} {ours:>8.1%} {base:>9.1%} {margin * 100:>+7.1f}p {n_ours:>8}/{n_base}")
    print(
        f"mean margin {statistics.mean(margins) * 100:+.1f} points, "
        f"smallest {worst * 100:+.1f} points; ours below baseline on "
        f"{sum(m < 0 for m in margins)} of {seeds} seeds"
    )
    return worst >= 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="100,1000,5000", help="node counts (default %(default)s)")
    p.add_argument("--rounds", type=int, default=300, help="filter calls per size")
    p.add_argument("--binds", type=int, default=200, help="timed binds per size")
    p.add_argument("--seeds", type=int, default=20, help="quality seeds")
    p.add_argument("--quick", action="store_true", help="small run")
    p.add_argument("--skip-latency", action="store_true")
    p.add_argument("--skip-quality", action="store_true")
    args = p.parse_args()
    if args.quick:
        args.sizes, args.rounds, args.binds, args.seeds = "100,1000", 60, 30, 5
    ok = True
    if not args.skip_latency:
        bench_latency([int(s) for s in args.sizes.split(",")], args.rounds, args.binds)
    if not args.skip_quality:
        ok = bench_quality(args.seeds)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
