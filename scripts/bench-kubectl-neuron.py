#!/usr/bin/env python3
"""How long `kubectl neuron` takes on a large fleet: builds N synthetic Neuron nodes (default
5,000: device-plugin trn1.32xlarge, inf2.48xlarge and inf2.xlarge nodes, and DRA trn1.32xlarge
and inf2.48xlarge nodes with core partitions), pods holding about half their cores with the
records the extender writes, and claims on the DRA nodes; then times

  pure     the views, the drawing, the JSON and the pods table from the lists in memory;
  http     the same through apiread's paged lists, from a local HTTP server that answers them
           (JSON decoding and paging included; no API server's own work);
  api      with --api-server: the same fleet stored in a real kube-apiserver and etcd (the scale
           benchmark's control plane, plugin-src/bench/scale_cluster.py: the current release,
           on 127.0.0.1, no kubelets), and `kubectl-neuron nodes` and `pods -A` run as a user
           runs them, as processes with a kubeconfig.

    python scripts/bench-kubectl-neuron.py [--nodes 5000] [--seed 1] [--api-server]

Prints the figures; asserts nothing (docs/kubectl-neuron.md quotes them).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugin-src" / "src"))

from neuron_k8s.allocator import NoFit, Request, Resource, choose, mask
from neuron_k8s.dra import devices as dra_devices
from neuron_k8s.dra import partitions
from neuron_k8s.fleet import apiread
from neuron_k8s.fleet.cli import nodes_json
from neuron_k8s.fleet.drawing import draw_nodes, table
from neuron_k8s.fleet.model import node_views
from neuron_k8s.fleet.podlist import HEADER, pod_rows
from neuron_k8s.kube import KubeClient
from neuron_k8s.pods import ContainerAllocation, allocation_annotations
from neuron_k8s.topology import shape_for

ROOT = Path(__file__).resolve().parents[1]
DRIVER = "neuron.aws.com"
VERSIONS = dra_devices.Versions("0.1.0", "fake")
# (instance type, DRA?, share of the fleet)
MIX = (
    ("trn1.32xlarge", False, 0.4),
    ("inf2.48xlarge", False, 0.3),
    ("inf2.xlarge", False, 0.1),
    ("trn1.32xlarge", True, 0.1),
    ("inf2.48xlarge", True, 0.1),
)
REQUESTS = (
    Request(Resource.NEURONCORE, 1),
    Request(Resource.NEURONCORE, 2),
    Request(Resource.NEURON, 1),
    Request(Resource.NEURON, 4),
)


def node(name: str, instance_type: str, dra: bool) -> dict[str, Any]:
    shape = shape_for(instance_type)
    labels = {"node.kubernetes.io/instance-type": instance_type}
    capacity = {"cpu": "96"}
    if dra:
        labels["neuron.k8s.local/dra"] = "true"
    else:
        capacity["aws.amazon.com/neuron"] = str(shape.devices)
        capacity["aws.amazon.com/neuroncore"] = str(shape.cores)
    return {
        "metadata": {"name": name, "labels": labels, "annotations": {}},
        "status": {"capacity": capacity, "allocatable": dict(capacity)},
    }


def fleet(count: int, rng: random.Random) -> dict[str, list[dict[str, Any]]]:
    objects: dict[str, list[dict[str, Any]]] = {
        "nodes": [],
        "pods": [],
        "resourceclaims": [],
        "resourceslices": [],
    }
    slices_of: dict[str, list[dict[str, Any]]] = {}
    for i in range(count):
        r, acc = rng.random(), 0.0
        typ, dra = MIX[-1][:2]
        for t, d, share in MIX:
            acc += share
            if r < acc:
                typ, dra = t, d
                break
        name = f"node-{i:05d}"
        objects["nodes"].append(node(name, typ, dra))
        shape = shape_for(typ)
        if dra and typ not in slices_of:
            contents = partitions.contents(shape, "NODE", VERSIONS)
            slices_of[typ] = dra_devices.slices_of("NODE", DRIVER, contents, 1)
        if dra:
            text = json.dumps(slices_of[typ]).replace('"NODE', f'"{name}')
            objects["resourceslices"] += json.loads(text)
        used = 0
        for k in range(shape.cores):
            if used.bit_count() >= shape.cores // 2:
                break
            req = rng.choice(REQUESTS)
            try:
                p = choose(shape, req, used)
            except NoFit:
                continue
            used |= mask(p.cores)
            pod_name = f"{name}-p{k}"
            meta = {"name": pod_name, "namespace": f"team-{i % 50}", "uid": pod_name}
            meta["creationTimestamp"] = "2026-12-06T12:00:00Z"
            resources = {"limits": {req.resource.value: str(req.count)}}
            spec: dict[str, Any] = {
                "nodeName": name,
                "containers": [{"name": "c", "resources": resources}],
            }
            pod = {"metadata": meta, "spec": spec, "status": {"phase": "Running"}}
            if dra:
                claim = f"{pod_name}-claim"
                spec["containers"][0]["resources"] = {"claims": [{"name": "n"}]}
                spec["resourceClaims"] = [{"name": "n", "resourceClaimTemplateName": "t"}]
                pod["status"]["resourceClaimStatuses"] = [{"name": "n", "resourceClaimName": claim}]
                results = [
                    {
                        "request": "neurons",
                        "driver": DRIVER,
                        "pool": name,
                        "device": f"neurondevice{d}",
                    }
                    for d in p.devices
                ]
                objects["resourceclaims"].append(
                    {
                        "metadata": {"name": claim, "namespace": meta["namespace"]},
                        "status": {
                            "allocation": {"devices": {"results": results}},
                            "reservedFor": [
                                {"resource": "pods", "name": pod_name, "uid": pod_name}
                            ],
                        },
                    }
                )
            else:
                allocation = [ContainerAllocation("c", p)]
                meta["annotations"] = allocation_annotations(name, allocation, 1)
            objects["pods"].append(pod)
    return objects


def timed(label: str, fn: Any, repeat: int = 3) -> Any:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    print(f"  {label:<44} {best * 1000:9.1f} ms (best of {repeat})")
    return result


def serve(objects: dict[str, list[dict[str, Any]]]) -> ThreadingHTTPServer:
    """Answers GET .../<kind>?limit=&continue= with pages of the objects, as the API server."""
    encoded = {k: [json.dumps(o) for o in v] for k, v in objects.items()}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(url.query))
            everything = encoded.get(url.path.rsplit("/", 1)[-1], [])
            start, limit = int(query.get("continue") or 0), int(query.get("limit") or 500)
            page = everything[start : start + limit]
            more = str(start + limit) if start + limit < len(everything) else ""
            body = f'{{"metadata":{{"continue":"{more}"}},"items":[{",".join(page)}]}}'.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def store(objects: dict[str, list[dict[str, Any]]]) -> Any:
    """A real control plane holding the fleet: nodes, namespaces, pods (their DRA claim
    statuses set), slices, and claims allocated and reserved for their pods' real uids."""
    sys.path.insert(0, str(ROOT / "plugin-src" / "bench"))
    from scale_cluster import ControlPlane, create_all

    plane = ControlPlane(Path(tempfile.mkdtemp(prefix="bench-kubectl-neuron-"))).start()
    client = plane.client()
    start = time.perf_counter()
    create_all(plane, "/api/v1/nodes", [{"apiVersion": "v1", "kind": "Node", **n}
                                       for n in objects["nodes"]])  # fmt: skip
    spaces = sorted({q["metadata"]["namespace"] for q in objects["pods"]})
    create_all(plane, "/api/v1/namespaces", [{"metadata": {"name": n}} for n in spaces])
    claim_of = {c["status"]["reservedFor"][0]["name"]: c for c in objects["resourceclaims"]}
    by_ns: dict[str, list[dict[str, Any]]] = {}
    for pod in objects["pods"]:
        body = {"apiVersion": "v1", "kind": "Pod", **json.loads(json.dumps(pod))}
        body["metadata"].pop("uid"), body["metadata"].pop("creationTimestamp")
        body.pop("status")
        body["spec"]["containers"][0]["image"] = "bench"
        by_ns.setdefault(body["metadata"]["namespace"], []).append(body)
    for ns, bodies in by_ns.items():
        create_all(plane, f"/api/v1/namespaces/{ns}/pods", bodies)
    create_all(plane, "/apis/resource.k8s.io/v1/resourceslices", objects["resourceslices"])
    uids = {
        q["metadata"]["name"]: q["metadata"]["uid"]
        for q in apiread.list_all(client, "/api/v1/pods")
    }

    def allocate(pod_name: str) -> None:
        claim = claim_of[pod_name]
        ns, name = claim["metadata"]["namespace"], claim["metadata"]["name"]
        count = len(claim["status"]["allocation"]["devices"]["results"])
        request = {"name": "neurons", "exactly": {"deviceClassName": DRIVER, "count": count}}
        body = {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
                "metadata": {"name": name, "namespace": ns},
                "spec": {"devices": {"requests": [request]}}}  # fmt: skip
        made = client.post(f"/apis/resource.k8s.io/v1/namespaces/{ns}/resourceclaims", body)
        reserved = [{"resource": "pods", "name": pod_name, "uid": uids[pod_name]}]
        made["status"] = {**claim["status"], "reservedFor": reserved}
        path = f"/apis/resource.k8s.io/v1/namespaces/{ns}/resourceclaims/{name}/status"
        client.request("PUT", path, body=made)
        pod = client.get(f"/api/v1/namespaces/{ns}/pods/{pod_name}")
        pod["status"]["resourceClaimStatuses"] = [{"name": "n", "resourceClaimName": name}]
        client.request("PUT", f"/api/v1/namespaces/{ns}/pods/{pod_name}/status", body=pod)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(allocate, claim_of))
    print(f"api: stored in a kube-apiserver in {time.perf_counter() - start:.0f} s")
    return plane


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--nodes", type=int, default=5000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--api-server", action="store_true", help="also time it on a kube-apiserver")
    args = p.parse_args()
    start = time.perf_counter()
    objects = fleet(args.nodes, random.Random(args.seed))
    sizes = ", ".join(f"{len(v)} {k}" for k, v in objects.items())
    print(f"fleet: {sizes} (built in {time.perf_counter() - start:.1f} s)")
    now = datetime.now(UTC)
    o = objects

    def views() -> Any:
        return node_views(o["nodes"], o["pods"], o["resourceclaims"], o["resourceslices"], DRIVER)

    print("pure (lists in memory):")
    v = timed("node views (holdings, health, room)", views)
    room_of_cache = sys.modules["neuron_k8s.fleet.model"].room_of
    room_of_cache.cache_clear()
    timed("node views, room memo cleared each time", lambda: (room_of_cache.cache_clear(), views()))
    text = timed("nodes: drawing (plain)", lambda: draw_nodes(v, False))
    timed("nodes: -o json", lambda: json.dumps(nodes_json(v)))
    rows = timed("pods -A: rows", lambda: pod_rows(o["pods"], v, o["resourceclaims"], DRIVER, now))
    timed("pods -A: table", lambda: table(HEADER, [r.cells() for r in rows]))
    print(f"  ({len(v)} node views, {len(text.splitlines())} lines drawn, {len(rows)} pod rows)")
    server = serve(objects)
    client = KubeClient(f"http://127.0.0.1:{server.server_address[1]}", timeout=120)
    print("http (apiread's paged lists from a local server, then the views):")
    timed("read_fleet: one paged list per kind", lambda: apiread.read_fleet(client, DRIVER), 1)

    def whole() -> str:
        snap = apiread.read_fleet(client, DRIVER)
        return draw_nodes(node_views(snap.nodes, snap.pods, snap.claims, snap.slices, DRIVER))

    timed("kubectl neuron nodes: read, views, drawing", whole, 1)
    server.shutdown()
    if args.api_server:
        plane = store(objects)
        try:
            print("api (kubectl-neuron as a process, against kube-apiserver and etcd):")
            env = {**os.environ, "PYTHONPATH": str(ROOT / "plugin-src" / "src")}
            for command in (["nodes"], ["nodes", "-o", "json"], ["pods", "-A"]):
                argv = [sys.executable, "-m", "neuron_k8s.fleet.cli", *command,
                        "--kubeconfig", str(plane.kubeconfig), "--no-color"]  # fmt: skip

                def run(argv: list[str] = argv) -> str:
                    done = subprocess.run(argv, env=env, capture_output=True, text=True)
                    if done.returncode != 0:
                        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr}")
                    return done.stdout

                out = timed(f"kubectl neuron {' '.join(command)}", run)
                same = ", the drawing made in memory" if out.strip() == text.strip() else ""
                print(f"    ({len(out.splitlines())} lines of output{same})")
        finally:
            plane.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
