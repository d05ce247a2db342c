#!/usr/bin/env python3
"""Benchmark of the Neuron device plugin (a script, not a test).

Runs the plugin as a subprocess in fake mode against a kubelet stand-in on temporary unix
sockets and prints:
- Allocate and GetPreferredAllocation latency (p50, p99) over the plugin's unix socket,
  (a) standalone (no API), and (b) with an API lookup: each Allocate finds a pod that the plugin
  has not seen yet, so it lists the node's pods from a local fake API server on 127.0.0.1 and
  merge-patches NEURON_ALLOCATED=true;
- each plugin process's peak RSS, and its CPU use while idle (registered, a ListAndWatch stream
  open, a pod watch open) over --idle-seconds (default 60).

    python plugin-src/bench/bench_deviceplugin.py [--calls 500] [--idle-seconds 60]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
# The unit tests' kubelet and API stand-ins (and the polling helper they share).
sys.path[:0] = [str(REPO / "tests" / "unit" / "deviceplugin"), str(REPO / "tests" / "unit")]

import grpc  # noqa: E402
from dp_harness import FakeApi, FakeKubelet, make_pod  # noqa: E402
from neuron_k8s.allocator import Resource, mask, placement_of  # noqa: E402
from neuron_k8s.deviceplugin.api import pb  # noqa: E402
from neuron_k8s.pods import ContainerAllocation, allocation_annotations  # noqa: E402
from neuron_k8s.topology import shape_for  # noqa: E402

INSTANCE_TYPE = "inf2.48xlarge"  # 12 devices x 2 cores
NODE = "bench-node"
CORE = "aws.amazon.com/neuroncore"


def add_pending_pod(api: FakeApi, n: int) -> None:
    """Replace the pods with one just bound by the extender (cores 2,3), behind the watch's
    back: the plugin must find it by listing."""
    placement = placement_of(shape_for(INSTANCE_TYPE), Resource.NEURONCORE, mask([2, 3]))
    notes = allocation_annotations(NODE, [ContainerAllocation("main", placement)], n)
    api.pods = {("default", f"p{n}"): make_pod(f"p{n}", NODE, [("main", CORE, 2)], notes)}


# --- measuring -----------------------------------------------------------------------------------
def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(fn: Any, calls: int, before: Any = None) -> list[float]:
    out = []
    for i in range(calls):
        if before is not None:
            before(i)
        start = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - start) * 1000)
    return out


def proc_status(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_plugin(plugin_dir: str, log: str, extra: list[str]) -> subprocess.Popen[bytes]:
    args = [
        sys.executable,
        "-m",
        "neuron_k8s.deviceplugin",
        "--fake-instance-type",
        INSTANCE_TYPE,
        "--device-plugin-dir",
        plugin_dir,
        "--http-port",
        "0",
        "--pod-resources-socket",
        "",
        "--log-level",
        "warning",
        *extra,
    ]
    with open(log, "w") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)


def wait_registered(kubelet: FakeKubelet, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while not (kubelet.registered(CORE) and kubelet.registered("aws.amazon.com/neuron")):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the plugin did not register")
        time.sleep(0.05)


def run(args: argparse.Namespace) -> None:
    root = tempfile.mkdtemp(prefix="dpbench", dir="/tmp")
    api = FakeApi().start()
    api.add_node(NODE)
    results: list[tuple[str, list[float]]] = []
    procs: dict[str, subprocess.Popen[bytes]] = {}
    kubelets: list[FakeKubelet] = []
    try:
        for mode in ("standalone", "api"):
            plugin_dir = os.path.join(root, mode)
            os.makedirs(plugin_dir)
            kubelet = FakeKubelet(plugin_dir).start()
            kubelets.append(kubelet)
            extra = (
                []
                if mode == "standalone"
                else [
                    "--kubeconfig",
                    api.kubeconfig(os.path.join(root, "kubeconfig")),
                    "--node-name",
                    NODE,
                ]
            )
            proc = procs[mode] = start_plugin(plugin_dir, os.path.join(root, f"{mode}.log"), extra)
            wait_registered(kubelet, proc)
            stub = kubelet.stub(CORE)
            request = pb.AllocateRequest(
                container_requests=[pb.ContainerAllocateRequest(devices_ids=["0", "1"])]
            )
            want = "0,1" if mode == "standalone" else "2,3"

            def alloc(_: int, stub: Any = stub, request: Any = request, want: str = want) -> None:
                resp = stub.Allocate(request, timeout=10)
                got = resp.container_responses[0].envs["NEURON_RT_VISIBLE_CORES"]
                assert got == want, f"Allocate gave {got}, expected {want}"

            before = None if mode == "standalone" else lambda n: add_pending_pod(api, n)
            preferred = pb.PreferredAllocationRequest(
                container_requests=[
                    pb.ContainerPreferredAllocationRequest(
                        available_deviceIDs=[str(i) for i in range(24)], allocation_size=2
                    )
                ]
            )
            timed(alloc, 20, before)  # warm up
            results.append((f"Allocate, {mode}", timed(alloc, args.calls, before)))
            results.append(
                (
                    f"GetPreferredAllocation, {mode}",
                    timed(
                        lambda _, stub=stub, req=preferred: stub.GetPreferredAllocation(
                            req, timeout=10
                        ),
                        args.calls,
                    ),
                )
            )

        print(
            f"device plugin benchmark: fake {INSTANCE_TYPE}, {args.calls} calls each, "
            f"unix socket, Python {sys.version.split()[0]}, grpcio {grpc.__version__}"
        )
        print(f"{'call':<38} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
        for name, samples in results:
            print(
                f"{name:<38} {percentile(samples, 0.5):8.2f} {percentile(samples, 0.99):8.2f}"
                f" {max(samples):8.2f}"
            )

        start = {m: cpu_seconds(p.pid) for m, p in procs.items()}
        began = time.monotonic()
        time.sleep(args.idle_seconds)
        elapsed = time.monotonic() - began
        print(f"{'process':<38} {'peak RSS MiB':>12} {'idle CPU %':>10}")
        for mode, p in procs.items():
            idle = (cpu_seconds(p.pid) - start[mode]) / elapsed * 100
            rss = proc_status(p.pid, "VmHWM") / 1024
            print(f"{'plugin, ' + mode:<38} {rss:12.1f} {idle:10.3f}")
        print(f"idle window {elapsed:.0f} s")
    finally:
        for p in procs.values():
            p.terminate()
            p.wait(10)
        for k in kubelets:
            k.stop()
        api.stop()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=500, help="timed calls per measurement")
    parser.add_argument(
        "--idle-seconds", type=float, default=60.0, help="length of the idle CPU window, seconds"
    )
    run(parser.parse_args())


if __name__ == "__main__":
    main()
