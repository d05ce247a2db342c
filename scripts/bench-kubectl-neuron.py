#!/usr/bin/env python3
"""How long `kubectl neuron` takes on a large fleet: builds N synthetic Neuron nodes (default
5,000: device-plugin trn1.32xlarge, inf2.48xlarge and inf2.xlarge nodes, and DRA trn1.32xlarge
and inf2.48xlarge nodes with core partitions), pods holding about half their cores with the
records the extender writes, and claims on the DRA nodes; then times

  pure     the views, the drawing, the JSON and the pods table from the lists in memory;
  http     the same through apiread's paged lists, from a local HTTP server that answers them
           (JSON decoding and paging included; no API server's own work).

    python scripts/bench-kubectl-neuron.py [--nodes 5000] [--seed 1]

Prints the figures; asserts nothing (docs/kubectl-neuron.md quotes them).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
import urllib.parse
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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--nodes", type=int, default=5000)
    p.add_argument("--seed", type=int, default=1)
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
