#!/usr/bin/env python3
"""Benchmark of the Neuron DRA driver (a script, not a test).

Starts the driver in-process in fake mode (a trn1.32xlarge node: 16 devices) against the unit
tests' kubelet and API stand-ins on temporary unix sockets and a local HTTP server, adds
--claims allocated ResourceClaims (one request each, of 1 or 4 devices) and waits until the
driver's watch has them all. Then it times, over the driver's unix socket as the kubelet calls
it (one claim per call, v1):
- cycle: NodePrepareResources then NodeUnprepareResources of each claim in turn (the node
  holds one prepared claim at a time);
- again: NodePrepareResources of a claim already prepared (answered from the checkpoint);
- fill: NodePrepareResources of every claim, none unprepared in between (the checkpoint grows
  to --claims entries, far more than a node's 16 devices ever hold: a worst case of its
  rewrite-on-every-change), then NodeUnprepareResources of every claim;
and prints p50 and p99 of each in milliseconds, the API requests made during the timed calls
(none is expected: claims come from the watch), and this process's RSS (driver and stand-ins
together) before the driver starts, once it is ready, and at the end, with its peak.

With --core-partitions the driver also publishes core sets (docs/dra.md, "Core partitions"),
every other claim asks for one (2 or 4 contiguous cores) instead of whole devices, and the
time from start to the slices' publication is printed too.

    python plugin-src/bench/bench_dra.py [--claims 500] [--core-partitions]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
# The unit tests' kubelet and API stand-ins (and the helpers they share).
sys.path[:0] = [str(REPO / "tests" / "unit" / "dra"), str(REPO / "tests" / "unit")]

from dra_harness import (  # noqa: E402
    CLAIMS,
    NODE,
    NODE_TYPE,
    Dirs,
    FakeApi,
    FakeKubelet,
    driver_config,
    make_claim,
    prepare,
    ready,
    result,
    unprepare,
    wait_until,
)
from neuron_k8s.dra.driver import Driver  # noqa: E402
from neuron_k8s.kube import KubeClient  # noqa: E402
from neuron_k8s.logs import setup  # noqa: E402


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def timed(call: Callable[[Any], Any], items: list[Any]) -> list[float]:
    out = []
    for item in items:
        start = time.perf_counter()
        call(item)
        out.append((time.perf_counter() - start) * 1000)
    return out


def check(response: Any, claim: dict[str, Any]) -> None:
    entry = response.claims[claim["metadata"]["uid"]]
    if entry.error:
        raise SystemExit(f"bench: {claim['metadata']['name']}: {entry.error}")


def claims(count: int, core_sets: bool) -> list[dict[str, Any]]:
    """Claim i: 4 devices (an aligned block) for every fourth claim, else 1 device; with
    core_sets, every odd claim a set of 2 or 4 cores instead."""
    out = []
    for i in range(count):
        name = f"claim-{i}"
        if core_sets and i % 2:
            # Inside one block of 4 devices (8 cores), as the driver publishes them.
            first, size = 8 * (i % 4) + 2 * (i % 3), 2 if i % 4 == 1 else 4
            cores = f"neuroncores{first}-{first + size - 1}"
            results = [result("cores", cores, NODE)]
            out.append(make_claim(name, pool=NODE, results=results, namespace="bench"))
            continue
        devices = [4 * (i % 4) + k for k in range(4)] if i % 4 == 0 else [i % 16]
        out.append(make_claim(name, {"neurons": devices}, NODE, namespace="bench"))
    return out


def run(args: argparse.Namespace) -> None:
    setup("error")  # the driver's info lines would be most of the run's time
    root = tempfile.mkdtemp(prefix="dra-bench", dir="/tmp")
    dirs = Dirs.under(root)
    api = FakeApi().start()
    api.add_node(NODE, NODE_TYPE)
    kubelet = FakeKubelet(dirs.registry).start()
    rss_before = status_kib("VmRSS")
    driver = Driver(
        driver_config(
            dirs,
            wait_for_claim=10.0,
            resync_interval=30.0,
            core_partitions=args.core_partitions,
        ),
        KubeClient.for_url(api.url),
    )
    try:
        started = time.perf_counter()
        driver.start()
        assert driver.publisher is not None
        wait_until(driver.publisher.published.is_set, 20, "the slices published")
        published_ms = (time.perf_counter() - started) * 1000
        wait_until(lambda: ready(driver), 20, "the driver registered, published, synced")
        rss_ready = status_kib("VmRSS")
        devices = len(api.published_devices(NODE))
        todo = claims(args.claims, args.core_partitions)
        for c in todo:
            api.add_claim(c)
        uids = [c["metadata"]["uid"] for c in todo]
        wait_until(lambda: all(driver.claims.get(u) for u in uids), 60, "the watch has every claim")
        stub = kubelet.stub("v1")
        mark = api.request_count()

        def prepare_one(c: dict[str, Any]) -> None:
            check(prepare(stub, c), c)

        def unprepare_one(c: dict[str, Any]) -> None:
            check(unprepare(stub, c), c)

        cycle_prepare, cycle_unprepare = [], []
        for c in todo:
            cycle_prepare += timed(prepare_one, [c])
            cycle_unprepare += timed(unprepare_one, [c])
        fill_prepare = timed(prepare_one, todo)
        again = timed(prepare_one, todo)
        fill_unprepare = timed(unprepare_one, todo)
        calls = [
            r for r in api.requests_since(mark) if r[1].startswith(CLAIMS) and "watch" not in r[1]
        ]
        rss_end = status_kib("VmRSS")
        # The kernel updates the peak lazily: it can lag the current figure by a few pages.
        rss_peak = max(status_kib("VmHWM"), rss_end)
    finally:
        driver.stop()
        kubelet.stop()
        api.stop()
        shutil.rmtree(root, ignore_errors=True)

    kinds = "1 or 4 devices, or 2 or 4 cores" if args.core_partitions else "1 or 4 devices"
    print(f"neuron-dra-driver in-process, fake {NODE_TYPE}, {args.claims} claims ({kinds})")
    print(f"slices published {published_ms:.0f} ms after start: {devices} devices")
    print(f"{'call':44} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, samples in (
        ("NodePrepareResources, cycle", cycle_prepare),
        ("NodeUnprepareResources, cycle", cycle_unprepare),
        ("NodePrepareResources, already prepared", again),
        (f"NodePrepareResources, fill to {args.claims}", fill_prepare),
        (f"NodeUnprepareResources, from {args.claims}", fill_unprepare),
    ):
        print(
            f"{name:44} {percentile(samples, 0.5):8.2f} {percentile(samples, 0.99):8.2f} "
            f"{max(samples):8.2f}"
        )
    print(f"ResourceClaim API requests during the timed calls: {len(calls)}")
    print(
        f"RSS of this process (driver + stand-ins): {rss_before / 1024:.1f} MiB before start, "
        f"{rss_ready / 1024:.1f} MiB ready, {rss_end / 1024:.1f} MiB at the end, "
        f"peak {rss_peak / 1024:.1f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--claims", type=int, default=500, help="claims to prepare (500)")
    parser.add_argument(
        "--core-partitions",
        action="store_true",
        help="publish core sets; half the claims ask for one",
    )
    run(parser.parse_args())


if __name__ == "__main__":
    main()
