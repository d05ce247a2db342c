"""bench_scale.py's report of one size: the runs side by side (plain, extender, DRA), the CPU
of every process, the extender's own figures, and each run's outcome check."""

from __future__ import annotations

import json

from scale_measure import Result


def report(nodes: int, pods: int, mix: str, results: dict[str, Result], floor: str) -> None:
    runs = list(results.values())
    plain = results.get("plain")
    print(f"\n== {nodes} nodes, {pods} pods ({mix})")
    print("| run | bound | pods/s | steady pods/s | p50 ms | p99 ms | pods/s vs plain |")
    print("|---|---|---|---|---|---|---|")
    for r in runs:
        ratio = f"{r.rate / plain.rate:.2f}" if plain and plain.rate else "-"
        print(
            f"| {r.name} | {r.bound}/{r.pods} | {r.rate:.0f} | {r.steady:.0f} | "
            f"{1000 * r.percentile(0.5):.0f} | {1000 * r.percentile(0.99):.0f} | {ratio} |"
        )
    print("CPU ms per bound pod, by process:")
    for r in runs:
        cells = ", ".join(
            f"{n} {1000 * s / max(r.bound, 1):.2f}" for n, s in sorted(r.cpu.items()) if s > 0
        )
        total = 1000 * sum(r.cpu.values()) / max(r.bound, 1)
        print(f"  {r.name}: {cells}; total {total:.2f}")
    ext = results.get("extender")
    if ext is not None:
        per_pod = 1000 * ext.extender_cpu / ext.bound if ext.bound else 0.0
        print(
            f"extender: {ext.extender_cpu:.1f} CPU s ({per_pod:.2f} ms per pod), "
            f"peak RSS {ext.extender_rss_mib:.0f} MiB"
        )
        requests = json.dumps(ext.api_requests, sort_keys=True)
        print(f"API requests during the extender run: {requests}")
        print(floor)
        if ext.profile:
            print(ext.profile)
    for r in runs:
        for note in r.notes:
            print(f"{r.name}: {note}")
        if r.name != "plain":
            print(f"outcome ({r.name}): {r.checked} bound pods checked, {len(r.wrong)} problems")
            for line in r.wrong[:20]:
                print(f"  {line}")
