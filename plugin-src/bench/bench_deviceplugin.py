#!/usr/bin/env python3
"""Benchmark of the Neuron device plugin (a script, not a test).

Runs the plugin as a subprocess in fake mode against a kubelet stand-in on temporary unix
sockets and prints:
- Allocate and GetPreferredAllocation latency (p50, p99) over the plugin's unix socket,
  (a) standalone (no API), and (b) with the API and PodResources configured: before each
  round a new pod planned on cores 2,3 is bound through a local fake API server on 127.0.0.1
  and listed by a PodResources stand-in as being admitted; GetPreferredAllocation finds it and
  answers its plan, Allocate serves it, and the reconciler records it (off the timed path). The
  API requests made during the timed calls are counted: none is expected;
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
from dp_harness import FakeApi, FakeKubelet, FakePodResources, make_pod  # noqa: E402
from neuron_k8s.allocator import Resource, mask, placement_of  # noqa: E402
from neuron_k8s.deviceplugin.api import pb  # noqa: E402
from neuron_k8s.pods import ContainerAllocation, allocation_annotations  # noqa: E402
from neuron_k8s.topology import shape_for  # noqa: E402

INSTANCE_TYPE = "inf2.48xlarge"  # 12 devices x 2 cores
NODE = "bench-node"
CORE = "aws.amazon.com/neuroncore"


def bind_pod(api: FakeApi, pr: FakePodResources, n: int) -> None:
    """Replace the pods with one just bound by the extender (plan: cores 2,3), which the
    kubelet stand-in lists as being admitted."""
    placement = placement_of(shape_for(INSTANCE_TYPE), Resource.NEURONCORE, mask([2, 3]))
    notes = allocation_annotations(NODE, [ContainerAllocation("main", placement)], n)
    for namespace, name in list(api.pods):
        api.delete_pod(namespace, name)
    api.put_pod(make_pod(f"p{n}", NODE, [("main", CORE, 2)], notes))
    pr.pods = {("default", f"p{n}")}


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
        pr = FakePodResources(os.path.join(root, "pr.sock")).start()
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
                    "--pod-resources-socket",
                    pr.socket_path,
                ]
            )
            proc = procs[mode] = start_plugin(plugin_dir, os.path.join(root, f"{mode}.log"), extra)
            wait_registered(kubelet, proc)
            stub = kubelet.stub(CORE)
            request = pb.AllocateRequest(
                container_requests=[pb.ContainerAllocateRequest(devices_ids=["2", "3"])]
            )
            preferred = pb.PreferredAllocationRequest(
                container_requests=[
                    pb.ContainerPreferredAllocationRequest(
                        available_deviceIDs=[str(i) for i in range(24)], allocation_size=2
                    )
                ]
            )

            def alloc(_: int, stub: Any = stub, request: Any = request) -> None:
                resp = stub.Allocate(request, timeout=10)
                got = resp.container_responses[0].envs["NEURON_RT_VISIBLE_CORES"]
                assert got == "2,3", f"Allocate gave {got}, expected 2,3"

            def prefer(_: int, stub: Any = stub, req: Any = preferred, mode: str = mode) -> None:
                got = list(
                    stub.GetPreferredAllocation(req, timeout=10).container_responses[0].deviceIDs
                )
                assert mode == "standalone" or got == ["2", "3"], f"preferred {got}, not the plan"

            pairs: list[tuple[float, float]] = []

            def admission(n: int, mode: str = mode, pairs: list = pairs) -> None:
                if mode == "api":
                    bind_pod(api, pr, n)
                    time.sleep(0.02)  # the watch delivers the pod, as it would before admission
                start = time.perf_counter()
                prefer(n)
                middle = time.perf_counter()
                alloc(n)
                pairs.append(((middle - start) * 1000, (time.perf_counter() - middle) * 1000))

            for n in range(20):  # warm up
                admission(n)
            pairs.clear()
            api_calls = len(api.requests)
            for n in range(args.calls):
                admission(1000 + n)
            during = [r for r in api.requests[api_calls:] if "watch=true" not in r[1]]
            patches = [r for r in during if r[0] == "PATCH"]
            results.append((f"GetPreferredAllocation, {mode}", [p for p, _ in pairs]))
            results.append((f"Allocate, {mode}", [a for _, a in pairs]))
            if mode == "api":
                other = [r for r in during if r[0] != "PATCH"]
                print(
                    f"api mode: {len(patches)} record patches (reconciler, off the kubelet's "
                    f"path), {len(other)} other API requests during the timed calls"
                )
        pr.stop()

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
