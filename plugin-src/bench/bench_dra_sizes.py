"""Which core-set sizes to publish (a benchmark, not a test): the default kube-scheduler's time
to allocate a claim for 1, 2, 4 and 8 cores beside claims for whole devices, on nodes that
publish each choice of dra/partitions.py's CORE_SET_CHOICES, against nodes that publish whole
devices only.

For each layout, a fresh control plane (scale_cluster.py: etcd, kube-apiserver, the current
release's kube-scheduler with its defaults; no kubelets) with --nodes Node objects each of
inf2.48xlarge and trn1.32xlarge, their ResourceSlices built by the driver's own code and the
chart's DeviceClasses (scale_dra.py). Then, per instance type (a nodeSelector), --rounds rounds
of: one whole device, 1 core, one whole device, 2 cores, one whole device, 4 cores, one whole
device, 8 cores; each a ResourceClaim and a pod using it, created one at a time, the next only
once the previous is bound. With whole devices only, k cores ask for k/2 whole devices (both
types have 2 cores a device), any ones: the same hardware, without a way to ask for adjacency.

Each cell is the mean of kube-scheduler's own `scheduler_scheduling_algorithm_duration_seconds`
(PreFilter, Filter on every node and Score of one pod: where the DRA allocator runs) over the
pods of that kind, read from its /metrics before and after each pod, then the median time from
the pod's creation to its binding (which adds writing the allocation and the binding).

    python plugin-src/bench/bench_dra_sizes.py [--nodes 12] [--rounds 10]   # about 2 minutes
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from neuron_k8s.dra.partitions import CORE_SET_CHOICES
from neuron_k8s.topology import shape_for
from scale_cluster import ControlPlane, create_all, node_body
from scale_dra import (
    CORE,
    DEVICE,
    DEVICE_CLASS,
    device_classes,
    device_request,
    node_contents,
    publish,
    template_spec,
)
from scale_schedulers import https_get, scheduler_config, start_scheduler

TYPES = ("inf2.48xlarge", "trn1.32xlarge")
CORES = (1, 2, 4, 8)
ROUND = [k for n in CORES for k in ((DEVICE, 1), (CORE, n))]
NAMESPACE = "default"
RESOURCE = "/apis/resource.k8s.io/v1"
ALGORITHM = "scheduler_scheduling_algorithm_duration_seconds"
WHOLE = "whole devices only"


def claim_spec(kind: tuple[str, int], choice: str | None) -> dict[str, Any]:
    resource, count = kind
    if choice is None and resource == CORE:
        devices = max(1, count // min(shape_for(t).cores_per_device for t in TYPES))
        return {"devices": {"requests": [device_request("neuron", DEVICE_CLASS, devices)]}}
    return template_spec(kind, partitioned=choice is not None)[1]


def label(kind: tuple[str, int]) -> str:
    resource, count = kind
    return "device" if resource == DEVICE else f"{count} core{'s' if count > 1 else ''}"


def algorithm_seconds(port: int) -> tuple[float, int]:
    """(sum, count) of the scheduler's scheduling-algorithm histogram so far."""
    total, count = 0.0, 0
    for line in https_get(port, "/metrics")[1].splitlines():
        if line.startswith(f"{ALGORITHM}_sum"):
            total = float(line.rsplit(" ", 1)[1])
        elif line.startswith(f"{ALGORITHM}_count"):
            count = int(float(line.rsplit(" ", 1)[1]))
    return total, count


def place(plane: ControlPlane, port: int, name: str, spec: dict[str, Any], instance: str) -> Any:
    """Create a claim and a pod using it; (algorithm seconds, seconds to bound), or None when
    the pod is not bound within 30 s."""
    client = plane.client()
    claim = {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim", "spec": spec}
    claim["metadata"] = {"name": name}
    client.post(f"{RESOURCE}/namespaces/{NAMESPACE}/resourceclaims", claim)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "schedulerName": "bench-dra",
            "nodeSelector": {"node.kubernetes.io/instance-type": instance},
            "resourceClaims": [{"name": "neuron", "resourceClaimName": name}],
            "containers": [
                {"name": "c0", "image": "bench", "resources": {"claims": [{"name": "neuron"}]}}
            ],
        },
    }
    before = algorithm_seconds(port)
    start = time.monotonic()
    client.post(f"/api/v1/namespaces/{NAMESPACE}/pods", pod)
    while time.monotonic() - start < 30:
        if client.get(f"/api/v1/namespaces/{NAMESPACE}/pods/{name}")["spec"].get("nodeName"):
            elapsed = time.monotonic() - start
            after = algorithm_seconds(port)
            return (after[0] - before[0]) / max(1, after[1] - before[1]), elapsed
        time.sleep(0.005)
    return None


def run_layout(args: argparse.Namespace, choice: str | None, workroot: Path) -> dict[str, Any]:
    prefix = (choice or "whole").replace(" ", "-")
    plane = ControlPlane(Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=workroot)))
    out: dict[str, Any] = {}
    try:
        plane.start()
        types = {f"{t.split('.')[0]}-{i}": t for t in TYPES for i in range(args.nodes)}
        create_all(plane, "/api/v1/nodes", [node_body(n, t) for n, t in types.items()])
        client = plane.client()
        for body in device_classes(partitioned=choice is not None):
            client.post(f"{RESOURCE}/deviceclasses", body)
        publish(plane, types, choice)
        config = scheduler_config(plane.kubeconfig, 5000, None, "bench-dra")
        port = start_scheduler(plane, config, "dra-scheduler").port
        for instance in TYPES:
            contents = node_contents(instance, "n", choice)
            published = sum(len(c.get("devices", [])) for c in contents)
            samples: dict[str, list[tuple[float, float]]] = {}
            failed: list[str] = []
            for r in range(args.rounds):
                for i, kind in enumerate(ROUND):
                    name = f"{instance.split('.')[0]}-{r}-{i}"
                    got = place(plane, port, name, claim_spec(kind, choice), instance)
                    if got is None:
                        failed.append(label(kind))
                    else:
                        samples.setdefault(label(kind), []).append(got)
            out[instance] = (published, samples, failed)
    finally:
        plane.stop()
    return out


def cell(samples: list[tuple[float, float]] | None) -> str:
    if not samples:
        return "-"
    algorithm = 1000 * statistics.fmean(a for a, _ in samples)
    e2e = 1000 * statistics.median(e for _, e in samples)
    return f"{algorithm:.1f} ({e2e:.0f})"


def report(args: argparse.Namespace, results: dict[str, dict[str, Any]]) -> None:
    print(
        f"\n{args.nodes} nodes each of {' and '.join(TYPES)}, {args.rounds} rounds per type; "
        "ms: mean scheduling algorithm (median creation to binding)"
    )
    heads = ["device", *(label((CORE, n)) for n in CORES)]
    print(f"| layout | instance type | devices per node | {' | '.join(heads)} |")
    print("|---|---|---|" + "---|" * len(heads))
    for layout, by_type in results.items():
        for instance, (published, samples, failed) in by_type.items():
            cells = [cell(samples.get(h)) for h in heads]
            print(f"| {layout} | {instance} | {published} | {' | '.join(cells)} |")
            if failed:
                print(f"  not placed within 30 s on {instance}: {', '.join(failed)}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, default=12, help="nodes of each instance type")
    p.add_argument("--rounds", type=int, default=10, help="rounds of claims per instance type")
    p.add_argument("--keep", action="store_true", help="keep the run directories (logs)")
    args = p.parse_args()
    workroot = Path(tempfile.mkdtemp(prefix="bench-dra-sizes-"))
    results: dict[str, dict[str, Any]] = {}
    try:
        for choice in [None, *CORE_SET_CHOICES]:
            layout = WHOLE if choice is None else f"core sets: {choice}"
            started = time.monotonic()
            results[layout] = run_layout(args, choice, workroot)
            print(f"{layout}: {time.monotonic() - started:.0f} s", file=sys.stderr)
    finally:
        if args.keep:
            print(f"logs kept in {workroot}")
        else:
            shutil.rmtree(workroot, ignore_errors=True)
    report(args, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
