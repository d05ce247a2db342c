"""Scale benchmark (not a test): Neuron pods through the real kube-scheduler on thousands of
Node objects: plain, as my-scheduler with the extender, and through DRA, side by side.

For each size, three runs on fresh control planes (scale_cluster.py: etcd and the current
release's kube-apiserver on 127.0.0.1, no kubelets), on the same nodes:
  plain     kube-scheduler, which only counts the extended resources: the ceiling;
  extender  kube-scheduler with the chart's rendered KubeSchedulerConfiguration (urlPrefix
            pointed at a local extender process, plain HTTP) and the extender;
  dra       kube-scheduler with its defaults (no feature gate set), the nodes' devices as
            ResourceSlices built by the driver's own code (scale_dra.py; with core partitions
            unless --core-sets none), the chart's DeviceClasses, and pods whose claims come from
            ResourceClaimTemplates, made by kube-controller-manager's ResourceClaim controller.
The scheduler starts first; the pods are then created as fast as 8 connections allow, and
each pod's time from its creation to its binding is taken from a watch. Afterwards the
extender's filter and prioritize are replayed at the same size to price one call, against
the floor of decoding and encoding the same JSON with orjson. The extender and DRA runs end
with their outcome checks (scale_outcome.py: the extender's records; scale_dra_outcome.py: the
claims' allocation results); the exit status is 1 when one finds anything wrong.

    python plugin-src/bench/bench_scale.py               # 500 and 5,000 nodes
    python plugin-src/bench/bench_scale.py --quick       # 200 nodes, 1,000 pods
    python plugin-src/bench/bench_scale.py --nodes 2000 --pods 4000 --mix devices
    python plugin-src/bench/bench_scale.py --nodes 500 --runs plain,dra --core-sets none

Builds what is missing through the project's scripts (scale_tools.py): etcd and the current
Kubernetes release's binaries (Go needed then), helm into .tools/bin. Needs the package
installed (`pip install ./plugin-src orjson`).
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "unit"))
from neuron_k8s.dra.partitions import CORE_SET_CHOICES, DEFAULT_CORE_SETS
from scale_cluster import ControlPlane, create_all, node_body
from scale_dra import (
    claim_template,
    device_classes,
    dra_pod_body,
    publish,
    start_claim_controller,
    template_spec,
)
from scale_dra_outcome import dra_problems
from scale_measure import NAMESPACE, Result, measure
from scale_outcome import problems
from scale_profile import profile_summary, rss_sampler, start_profile
from scale_replay import replay
from scale_report import report
from scale_schedulers import (
    attempts,
    dra_filter,
    scheduler_config,
    start_extender,
    start_scheduler,
)

RUNS = ("plain", "extender", "dra")
Kind = tuple[str, int]  # (resource, count) of one pod
RESOURCE = "/apis/resource.k8s.io/v1"
DRA_PODS = 1000

# Node kinds by share (their cores: 24, 12, 2, 32, 2), and pod kinds per mix by share.
NODE_MIX = [
    ("inf2.48xlarge", 30),
    ("inf2.24xlarge", 20),
    ("inf2.xlarge", 10),
    ("trn1.32xlarge", 35),
    ("trn1.2xlarge", 5),
]
CORE, DEVICE = "aws.amazon.com/neuroncore", "aws.amazon.com/neuron"
POD_MIXES = {
    "cores": [((CORE, 1), 50), ((CORE, 2), 35), ((CORE, 4), 15)],
    "devices": [((DEVICE, 1), 60), ((DEVICE, 2), 25), ((DEVICE, 4), 15)],
    "mixed": [
        ((CORE, 1), 40),
        ((CORE, 2), 25),
        ((CORE, 4), 10),
        ((DEVICE, 1), 20),
        ((DEVICE, 4), 5),
    ],
}
SIZES = [(500, 4000), (5000, 10000)]


def weighted(rng: random.Random, kinds: list[tuple[Any, int]], n: int) -> list[Any]:
    return rng.choices([k for k, _ in kinds], weights=[w for _, w in kinds], k=n)


def node_types(count: int) -> dict[str, str]:
    kinds = weighted(random.Random(7), NODE_MIX, count)
    return {f"node-{i:05d}": kind for i, kind in enumerate(kinds)}


def pod_body(name: str, scheduler: str, resource: str, count: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "schedulerName": scheduler,
            "containers": [
                {
                    "name": "c0",
                    "image": "bench",
                    "resources": {
                        "requests": {"cpu": "10m", "memory": "16Mi"},
                        "limits": {resource: str(count)},
                    },
                }
            ],
        },
    }


def pod_bodies(scheduler: str, kinds: list[tuple[str, int]]) -> list[dict[str, Any]]:
    return [pod_body(f"p-{i:05d}", scheduler, r, n) for i, (r, n) in enumerate(kinds)]


def plain_run(
    plane: ControlPlane, args: argparse.Namespace, result: Result, kinds: list[Kind]
) -> None:
    start_scheduler(plane, scheduler_config(plane.kubeconfig, args.qps, None), "plain")
    measure(plane, result, pod_bodies("bench-plain", kinds))


def extender_run(
    plane: ControlPlane,
    args: argparse.Namespace,
    result: Result,
    kinds: list[Kind],
    types: dict[str, str],
) -> str:
    extender, port = start_extender(plane)
    start_scheduler(plane, scheduler_config(plane.kubeconfig, args.qps, port), "my-scheduler")
    before, cpu0 = plane.request_counts(), extender.cpu_seconds()
    peak = [0.0]
    sampler = rss_sampler(extender.pid, peak)
    profiler = start_profile(extender.pid, plane.workdir) if args.profile else None
    measure(plane, result, pod_bodies("my-scheduler", kinds))
    sampler.set()
    if profiler is not None:
        result.profile = profile_summary(profiler, plane.workdir)
    result.extender_cpu = extender.cpu_seconds() - cpu0
    result.extender_rss_mib = peak[0] / 1024
    after = plane.request_counts()
    result.api_requests = {
        v: n - before.get(v, 0) for v, n in after.items() if n > before.get(v, 0)
    }
    listed = plane.client().get(f"/api/v1/namespaces/{NAMESPACE}/pods")["items"]
    result.checked, result.wrong = problems(types, listed)
    return replay(port, extender, list(types), kinds)


def dra_run(
    plane: ControlPlane,
    args: argparse.Namespace,
    result: Result,
    kinds: list[Kind],
    types: dict[str, str],
) -> None:
    choice = None if args.core_sets == "none" else args.core_sets
    client = plane.client()
    for body in device_classes(partitioned=choice is not None):
        client.post(f"{RESOURCE}/deviceclasses", body)
    start = time.monotonic()
    slices, devices = publish(plane, types, choice)
    result.notes.append(
        f"{slices} ResourceSlices with {devices} devices (core sets: {args.core_sets}) "
        f"built and created in {time.monotonic() - start:.0f} s"
    )
    template_of, asked = {}, {}
    for kind in sorted(set(kinds)):
        name, spec, asks = template_spec(kind, partitioned=choice is not None)
        if name not in asked:
            path = f"{RESOURCE}/namespaces/{NAMESPACE}/resourceclaimtemplates"
            client.post(path, claim_template(name, spec))
        template_of[kind], asked[name] = name, asks
    start_claim_controller(plane, args.qps)
    config = scheduler_config(plane.kubeconfig, args.qps, None, "bench-dra")
    scheduler = start_scheduler(plane, config, "dra-scheduler")
    bodies = [
        dra_pod_body(f"p-{i:05d}", "bench-dra", template_of[kind]) for i, kind in enumerate(kinds)
    ]
    measure(plane, result, bodies)
    result.notes.append(f"scheduling attempts: {attempts(scheduler.port)}")
    result.notes.append(f"DynamicResources Filter per node: {dra_filter(scheduler.port)}")
    listed = client.get(f"/api/v1/namespaces/{NAMESPACE}/pods")["items"]
    claims = client.get(f"{RESOURCE}/namespaces/{NAMESPACE}/resourceclaims")["items"]
    result.checked, result.wrong = dra_problems(types, asked, listed, claims)


def run_size(args: argparse.Namespace, nodes: int, pods: int, workroot: Path) -> bool:
    types = node_types(nodes)
    kinds = weighted(random.Random(11), POD_MIXES[args.mix], pods)
    results, floor = {}, ""
    for name in args.runs:
        plane = ControlPlane(Path(tempfile.mkdtemp(prefix=f"{name}-", dir=workroot)))
        try:
            plane.start()  # inside: what started before a failure is stopped too
            create_all(plane, "/api/v1/nodes", [node_body(n, t) for n, t in types.items()])
            count = min(pods, args.dra_pods) if name == "dra" else pods
            result = results[name] = Result(name, count)
            if name == "plain":
                plain_run(plane, args, result, kinds)
            elif name == "extender":
                floor = extender_run(plane, args, result, kinds, types)
            else:
                dra_run(plane, args, result, kinds[:count], types)
        finally:
            plane.stop()
    report(nodes, pods, args.mix, results, floor)
    return not any(r.wrong for r in results.values())


def runs(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = sorted(set(names) - set(RUNS))
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"runs are a comma-separated subset of {RUNS}")
    return [n for n in RUNS if n in names]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, help="one size: this many nodes (with --pods)")
    p.add_argument("--pods", type=int, default=None, help="pods of that size")
    p.add_argument("--mix", choices=sorted(POD_MIXES), default="mixed")
    p.add_argument("--runs", type=runs, default=list(RUNS), help="plain,extender,dra (all)")
    p.add_argument(
        "--core-sets",
        choices=[*sorted(CORE_SET_CHOICES), "none"],
        default=DEFAULT_CORE_SETS,
        help="the DRA run's core partitions (none: whole devices only; core kinds then ask "
        "for one device)",
    )
    p.add_argument(
        "--dra-pods",
        type=int,
        default=DRA_PODS,
        help=f"at most this many of the size's pods in the DRA run (default {DRA_PODS}): with "
        "core sets each costs the default scheduler far more CPU (docs/performance.md)",
    )
    p.add_argument("--qps", type=int, default=5000, help="the schedulers' API client qps/burst")
    p.add_argument("--quick", action="store_true", help="200 nodes, 1,000 pods")
    p.add_argument("--keep", action="store_true", help="keep the run directories (logs)")
    p.add_argument("--profile", action="store_true", help="sample the extender with py-spy")
    args = p.parse_args()
    if args.quick:
        sizes = [(200, 1000)]
    elif args.nodes:
        sizes = [(args.nodes, args.pods or 2 * args.nodes)]
    else:
        sizes = SIZES
    workroot = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    ok = True
    try:
        for nodes, pods in sizes:
            ok = run_size(args, nodes, pods, workroot) and ok
    finally:
        if args.keep:
            print(f"logs kept in {workroot}")
        else:
            shutil.rmtree(workroot, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
