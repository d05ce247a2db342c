#!/usr/bin/env python3
"""Fuzz the extender's HTTP server (a script, not a test): the extender runs as a process
against the unit tests' fake API server on 127.0.0.1, and hypothesis sends it --requests
adversarial requests (tests/unit/extender/extender_fuzz.py: wrong types, huge arrays, deep
nesting, invalid UTF-8, lying lengths, broken chunking, wrong paths and methods), while
--slow clients trickle their requests a byte at a time. Prints the count per status, the
extender's largest RSS, and exits 1 on any undefined answer (a 500, or no answer to a whole
request) or if the process died.

With --records N it first feeds N cases of random and hostile pod records to the extender's
pod view in this process (tests/unit/extender/extender_records_fuzz.py: ClusterState's list,
watch events and a late node), and exits 1 if any raises or changes a well-formed pod's count.
--requests 0 skips the HTTP part.

    python plugin-src/fuzz/fuzz_extender.py [--requests 10000] [--slow 20] [--records 10000]
"""

from __future__ import annotations

import argparse
import collections
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "tests" / "unit" / "extender"), str(REPO / "tests" / "unit")]

from extender_fakeapi import FakeApiServer  # noqa: E402
from extender_fuzz import DEFINED, requests, send  # noqa: E402
from extender_helpers import make_node  # noqa: E402
from extender_records_fuzz import cases, check  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from process_memory import rss_kib  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ready_status(port: int) -> int | None:
    try:
        return send(port, b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
    except OSError:
        return None


def slow_client(port: int, stop: threading.Event, sent: list[int]) -> None:
    """A request one byte every 50 ms, never finished: it must not hold up anybody else."""
    raw = b"POST /filter HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"{" * 1000
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
            for b in raw:
                if stop.is_set():
                    return
                s.send(bytes([b]))
                sent[0] += 1
                time.sleep(0.05)
    except OSError:
        pass  # the server's timeout dropped us: as it should


def fuzz_records(count: int) -> bool:
    """Hostile records against ClusterState; prints the figures, True when all held."""
    import logging

    logging.disable(logging.WARNING)  # every hostile record is logged once: thousands of lines
    ran, failures = [0], []

    @settings(
        max_examples=count, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(case=cases())
    def fuzz(case: Any) -> None:
        ran[0] += 1
        check(case)

    started = time.monotonic()
    try:
        fuzz()
    except Exception:  # hypothesis re-raises the shrunk failure, after printing its case
        failures.append(traceback.format_exc())
    finally:
        logging.disable(logging.NOTSET)
    pods = ran[0] * 4  # well-formed pods per case
    print(
        f"record fuzz: {ran[0]} cases in {time.monotonic() - started:.0f} s "
        f"({pods} well-formed pod views checked), failures: {len(failures)}"
    )
    for f in failures:
        print(f"  FAILED: {f[-3000:]}")
    return not failures and ran[0] >= count


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=10_000, help="0: no HTTP fuzzing")
    p.add_argument("--slow", type=int, default=20, help="slow clients held open meanwhile")
    p.add_argument("--records", type=int, default=0, help="hostile-record cases run first")
    args = p.parse_args()
    if args.records and not fuzz_records(args.records):
        return 1
    if args.requests == 0:
        return 0

    api = FakeApiServer().start()
    api.cluster.put("nodes", make_node("inf2-a", "inf2.48xlarge"))
    tmp = tempfile.mkdtemp(prefix="fuzz")
    kubeconfig = Path(tmp) / "kubeconfig"
    kubeconfig.write_text(
        '{"apiVersion":"v1","kind":"Config","clusters":[{"name":"c","cluster":{"server":"'
        + api.url
        + '"}}],"users":[{"name":"u","user":{"token":"t"}}],"contexts":[{"name":"c",'
        '"context":{"cluster":"c","user":"u"}}],"current-context":"c"}'
    )
    port, probes = free_port(), free_port()
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "neuron_k8s.extender.cli", "--kubeconfig", str(kubeconfig)),
            *("--address", "127.0.0.1", "--port", str(port), "--http-port", str(probes)),
            *("--log-level", "error"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(Path(tmp) / "extender.log", "w"),  # noqa: SIM115 - lives with the process
    )
    statuses: collections.Counter[str] = collections.Counter()
    bad: list[bytes] = []
    peak = [0]
    stop = threading.Event()
    trickled = [0]
    try:
        deadline = time.monotonic() + 20
        while ready_status(probes) != 200:
            if time.monotonic() > deadline or proc.poll() is not None:
                print("the extender did not become ready", file=sys.stderr)
                return 1
            time.sleep(0.2)
        slow = [
            threading.Thread(target=slow_client, args=(port, stop, trickled), daemon=True)
            for _ in range(args.slow)
        ]
        for t in slow:
            t.start()

        @settings(
            max_examples=args.requests,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(request=requests())
        def fuzz(request: tuple[bytes, bool]) -> None:
            raw, whole = request
            status = send(port, raw)
            statuses[str(status)] += 1
            if (status is None and whole) or (status is not None and status not in DEFINED):
                bad.append(raw[:200])
            if sum(statuses.values()) % 200 == 0:
                peak[0] = max(peak[0], rss_kib(proc.pid))

        started = time.monotonic()
        fuzz()
        elapsed = time.monotonic() - started
        peak[0] = max(peak[0], rss_kib(proc.pid))
        ready = ready_status(probes)
    finally:
        stop.set()
        alive = proc.poll() is None
        proc.terminate()
        proc.wait(10)
        api.stop()
    total = sum(statuses.values())
    print(f"extender fuzz: {total} requests in {elapsed:.0f} s, {args.slow} slow clients held")
    print("  answers: " + ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items())))
    print(f"  largest RSS of the extender: {peak[0] / 1024:.1f} MiB; alive after: {alive}")
    print(f"  /readyz after: {ready}; bytes the slow clients got in: {trickled[0]}")
    for raw in bad[:5]:
        print(f"  UNDEFINED answer to: {raw!r}")
    return 0 if alive and ready == 200 and not bad and total >= args.requests else 1


if __name__ == "__main__":
    sys.exit(main())
