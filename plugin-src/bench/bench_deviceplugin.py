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
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from neuron_k8s.deviceplugin.api import pb, pb_grpc, target
from neuron_k8s.pods import ALLOCATION, AWS_NEURON_IDS, NEURON_ALLOC_TIME, NEURON_ALLOCATED

INSTANCE_TYPE = "inf2.48xlarge"  # 12 devices x 2 cores
NODE = "bench-node"
CORE = "aws.amazon.com/neuroncore"


# --- a kubelet stand-in ------------------------------------------------------------------------
class Kubelet(pb_grpc.RegistrationServicer):
    def __init__(self, plugin_dir: str) -> None:
        self.plugin_dir = plugin_dir
        self.endpoints: dict[str, str] = {}
        self.streams: list[Any] = []
        self.server = grpc.server(ThreadPoolExecutor(max_workers=2))
        pb_grpc.add_RegistrationServicer_to_server(self, self.server)
        self.server.add_insecure_port(target(os.path.join(plugin_dir, "kubelet.sock")))
        self.server.start()

    def Register(self, request: pb.RegisterRequest, context: grpc.ServicerContext) -> pb.Empty:
        self.endpoints[request.resource_name] = request.endpoint
        threading.Thread(target=self._watch, args=(request.endpoint,), daemon=True).start()
        return pb.Empty()

    def _watch(self, endpoint: str) -> None:
        channel = grpc.insecure_channel(target(os.path.join(self.plugin_dir, endpoint)))
        stream = pb_grpc.DevicePluginStub(channel).ListAndWatch(pb.Empty())
        self.streams.append(stream)
        try:
            for _ in stream:
                pass
        except grpc.RpcError:
            pass

    def stub(self, resource: str) -> pb_grpc.DevicePluginStub:
        path = os.path.join(self.plugin_dir, self.endpoints[resource])
        return pb_grpc.DevicePluginStub(grpc.insecure_channel(target(path)))

    def stop(self) -> None:
        for s in self.streams:
            s.cancel()
        self.server.stop(0)


# --- a fake API server: list and watch pods of a node, merge-patch pods and nodes -------------
class Api:
    def __init__(self) -> None:
        self.pods: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.closing = threading.Event()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                # Headers and body go out in separate writes: without this, Nagle's algorithm
                # and the client's delayed ACK add 40 ms to every response.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _send(self, doc: Any) -> None:
                body = json.dumps(doc).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                if "watch=true" in url.query:
                    # A watch that stays quiet: the plugin must find new pods by listing.
                    self.send_response(200)
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.close_connection = True
                    api.closing.wait()
                    return
                if url.path == "/api/v1/pods":
                    with api.lock:
                        items = list(api.pods.values())
                    self._send(
                        {"kind": "PodList", "metadata": {"resourceVersion": "1"}, "items": items}
                    )
                    return
                self._send({"kind": "Node", "metadata": {"name": NODE, "labels": {}}})

            def do_PATCH(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                name = self.path.rsplit("/", 1)[1]
                with api.lock:
                    pod = api.pods.get(name)
                    if pod is not None:
                        pod["metadata"]["annotations"].update(body["metadata"]["annotations"])
                self._send(pod or {"kind": "Node"})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def add_pending_pod(self, n: int) -> None:
        """Replace the pods with one pod just bound by the extender, cores 2,3."""
        detail = {
            "node": NODE,
            "containers": [
                {"name": "main", "resource": CORE, "ids": [2, 3], "cores": [2, 3], "devices": [1]}
            ],
        }
        pod = {
            "kind": "Pod",
            "metadata": {
                "name": f"p{n}",
                "namespace": "default",
                "uid": f"uid-{n}",
                "annotations": {
                    AWS_NEURON_IDS: "2,3",
                    NEURON_ALLOCATED: "false",
                    NEURON_ALLOC_TIME: str(n),
                    ALLOCATION: json.dumps(detail),
                },
            },
            "spec": {
                "nodeName": NODE,
                "containers": [{"name": "main", "resources": {"limits": {CORE: "2"}}}],
            },
            "status": {"phase": "Pending"},
        }
        with self.lock:
            self.pods = {f"p{n}": pod}

    def kubeconfig(self, path: str) -> str:
        with open(path, "w") as f:
            json.dump(
                {
                    "clusters": [{"name": "c", "cluster": {"server": self.url}}],
                    "users": [{"name": "u", "user": {"token": "t"}}],
                    "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                    "current-context": "x",
                },
                f,
            )
        return path

    def stop(self) -> None:
        self.closing.set()
        self.httpd.shutdown()


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


def wait_registered(kubelet: Kubelet, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while len(kubelet.endpoints) < 2:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the plugin did not register")
        time.sleep(0.05)


def run(args: argparse.Namespace) -> None:
    root = tempfile.mkdtemp(prefix="dpbench", dir="/tmp")
    api = Api()
    results: list[tuple[str, list[float]]] = []
    procs: dict[str, subprocess.Popen[bytes]] = {}
    kubelets: list[Kubelet] = []
    try:
        for mode in ("standalone", "api"):
            plugin_dir = os.path.join(root, mode)
            os.makedirs(plugin_dir)
            kubelet = Kubelet(plugin_dir)
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

            before = None if mode == "standalone" else api.add_pending_pod
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
