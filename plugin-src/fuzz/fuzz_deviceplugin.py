#!/usr/bin/env python3
"""Fuzz the device plugin's gRPC services (a script, not a test): the plugin runs as a process
in fake mode against the unit tests' kubelet stand-in, and hypothesis makes --calls adversarial
calls of GetPreferredAllocation, Allocate, GetDevicePluginOptions and PreStartContainer
(tests/unit/deviceplugin/grpc_fuzz.py: IDs that are not IDs, huge and duplicate lists, sizes
out of range, raw bytes that are no message) on both sockets. Prints the count per status, the
plugin's largest RSS, and exits 1 on any undefined answer (UNKNOWN: an unhandled error) or if
the process died.

Then, in-process, --records hostile pod objects (tests/unit/deviceplugin/record_fuzz.py:
malformed, out-of-range, oversized and other nodes' records, garbage specs and statuses) go
through the plugin's pod view callbacks beside well-formed pods, whose plans, preferences and
Allocate answers must not change; exits 1 on any exception or change.

    python plugin-src/fuzz/fuzz_deviceplugin.py [--calls 10000] [--records 10000]
"""

from __future__ import annotations

import argparse
import collections
import logging
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "tests" / "unit" / "deviceplugin"), str(REPO / "tests" / "unit")]

import grpc  # noqa: E402
from dp_harness import NEURONCORE, FakeKubelet, allocate  # noqa: E402
from grpc_fuzz import DEFINED, RAW_DEFINED, call, calls  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from neuron_k8s.deviceplugin.api import target  # noqa: E402
from process_memory import rss_kib  # noqa: E402

RESOURCES = ("aws.amazon.com/neuron", NEURONCORE)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=10_000)
    p.add_argument("--records", type=int, default=10_000)
    args = p.parse_args()
    grpc_ok = fuzz_grpc(args.calls) if args.calls else True
    records_ok = fuzz_records(args.records) if args.records else True
    return 0 if grpc_ok and records_ok else 1


def fuzz_records(cases: int) -> bool:
    from record_fuzz import check, hostile_pod

    logging.disable(logging.WARNING)  # every hostile record is logged once: thousands of lines
    seen = [0]
    failures: list[str] = []

    @settings(
        max_examples=cases, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(evil=hostile_pod)
    def fuzz(evil: object) -> None:
        seen[0] += 1
        try:
            check(evil)
        except Exception as err:  # collected, not raised: every case runs
            failures.append(f"{type(err).__name__}: {err} for {evil!r:.200}")

    started = time.monotonic()
    fuzz()
    elapsed = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"pod record fuzz: {seen[0]} hostile pods in {elapsed:.0f} s, in-process")
    print(f"  failures: {len(failures)}; largest RSS of this process: {peak:.1f} MiB")
    for failure in failures[:5]:
        print(f"  FAILED {failure}")
    return not failures and seen[0] >= cases


def fuzz_grpc(count: int) -> bool:
    args = argparse.Namespace(calls=count)
    root = tempfile.mkdtemp(prefix="dpfuzz", dir="/tmp")
    kubelet = FakeKubelet(root).start()
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "neuron_k8s.deviceplugin"),
            *("--fake-instance-type", "inf2.48xlarge", "--device-plugin-dir", root),
            *("--http-port", "0", "--pod-resources-socket", "", "--log-level", "error"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    statuses: collections.Counter[str] = collections.Counter()
    bad: list[tuple[str, bytes, str]] = []
    peak = [0]
    channels: list[grpc.Channel] = []
    try:
        deadline = time.monotonic() + 20
        while not all(kubelet.registered(r) for r in RESOURCES):
            if time.monotonic() > deadline or proc.poll() is not None:
                print("the plugin did not register", file=sys.stderr)
                return False
            time.sleep(0.1)
        for r in RESOURCES:  # socket names carry a suffix per start: the kubelet is told them
            sock = kubelet.registered(r)[-1].endpoint
            channels.append(grpc.insecure_channel(target(os.path.join(root, sock))))

        @settings(
            max_examples=args.calls,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(request=calls())
        def fuzz(request: tuple[str, bytes, bool]) -> None:
            method, body, well_formed = request
            channel = channels[sum(statuses.values()) % 2]
            code = call(channel, method, body)
            statuses[f"{method} {code}"] += 1
            if code not in (DEFINED if well_formed else RAW_DEFINED):
                bad.append((method, body[:100], code))
            if sum(statuses.values()) % 200 == 0:
                peak[0] = max(peak[0], rss_kib(proc.pid))

        started = time.monotonic()
        fuzz()
        elapsed = time.monotonic() - started
        peak[0] = max(peak[0], rss_kib(proc.pid))
        served = allocate(kubelet.stub(NEURONCORE), ["23"]).container_responses[0].envs
    finally:
        alive = proc.poll() is None
        for ch in channels:
            ch.close()
        proc.terminate()
        proc.wait(10)
        kubelet.stop()
        shutil.rmtree(root, ignore_errors=True)
    total = sum(statuses.values())
    print(f"device plugin fuzz: {total} calls in {elapsed:.0f} s over both sockets")
    for key, n in sorted(statuses.items()):
        print(f"  {key}: {n}")
    print(f"  largest RSS of the plugin: {peak[0] / 1024:.1f} MiB; alive after: {alive}")
    print(f"  a plain Allocate after: NEURON_RT_VISIBLE_CORES={served['NEURON_RT_VISIBLE_CORES']}")
    for method, body, code in bad[:5]:
        print(f"  UNDEFINED answer {code} to {method}: {body!r}")
    return alive and not bad and total >= args.calls


if __name__ == "__main__":
    sys.exit(main())
