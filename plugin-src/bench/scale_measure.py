"""One run of bench_scale.py measured: pods created as fast as 8 connections allow while the
scheduler runs, each pod's time from its creation to its binding taken from a watch, and the
CPU of every process of the run."""

from __future__ import annotations

import resource
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from scale_cluster import ControlPlane

NAMESPACE = "default"


@dataclass
class Result:
    name: str
    pods: int
    bound: int = 0
    seconds: float = 0.0
    steady: float = 0.0
    latencies: list[float] = field(default_factory=list)
    extender_cpu: float = 0.0
    extender_rss_mib: float = 0.0
    api_requests: dict[str, int] = field(default_factory=dict)
    wrong: list[str] = field(default_factory=list)
    checked: int = 0
    profile: str = ""
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds per process in the run
    notes: list[str] = field(default_factory=list)  # what else the run has to say

    @property
    def rate(self) -> float:
        return self.bound / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Watcher:
    """Times each pod's first sight with a node name. The watch selects bound pods only
    (spec.nodeName set), so that it keeps up: the API server closes a watch that falls behind,
    and then this one resumes from the last resource version it saw."""

    def __init__(self, plane: ControlPlane) -> None:
        self.bound: dict[str, float] = {}
        self.done = threading.Event()
        self.restarts = 0
        client = plane.client()
        rv = client.get(f"/api/v1/namespaces/{NAMESPACE}/pods")["metadata"]["resourceVersion"]
        self.thread = threading.Thread(target=self._run, args=(client, rv), daemon=True)
        self.thread.start()

    def _run(self, client: Any, rv: str) -> None:
        path = f"/api/v1/namespaces/{NAMESPACE}/pods"
        while not self.done.is_set():
            params = {
                "resourceVersion": rv,
                "fieldSelector": "spec.nodeName!=",
                "timeoutSeconds": 600,
            }
            try:
                for event in client.watch(path, params):
                    pod = event.get("object") or {}
                    meta = pod.get("metadata") or {}
                    rv = meta.get("resourceVersion", rv)
                    name = meta.get("name")
                    if event.get("type") != "BOOKMARK" and name and name not in self.bound:
                        self.bound[name] = time.monotonic()
                    if self.done.is_set():
                        return
            except Exception as err:
                print(f"bench: the pod watch failed ({err!r}); resuming", file=sys.stderr)
                time.sleep(0.2)
            self.restarts += 1


def cpu_by_process(plane: ControlPlane) -> dict[str, float]:
    """CPU seconds so far of every process of the run, this benchmark's own included."""
    out = {p.name: p.cpu_seconds() for p in plane.processes if p.proc.poll() is None}
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out["bench client"] = usage.ru_utime + usage.ru_stime
    return out


def measure(plane: ControlPlane, result: Result, bodies: list[dict[str, Any]]) -> None:
    """Create the pods while the scheduler runs; fill in `result` as they are bound, until all
    are or none has been for 30 s."""
    watcher = Watcher(plane)
    cpu_before = cpu_by_process(plane)
    names = [b["metadata"]["name"] for b in bodies]
    created: dict[str, float] = {}
    client = plane.client()

    def create(chunk: list[dict[str, Any]]) -> None:
        for body in chunk:
            created[body["metadata"]["name"]] = time.monotonic()
            client.post(f"/api/v1/namespaces/{NAMESPACE}/pods", body)

    start = time.monotonic()
    threads = [threading.Thread(target=create, args=(bodies[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    last_progress, seen = time.monotonic(), 0
    while len(watcher.bound) < len(names):
        time.sleep(0.5)
        if len(watcher.bound) != seen:
            seen, last_progress = len(watcher.bound), time.monotonic()
        elif time.monotonic() - last_progress > 30:
            break  # the rest cannot be placed
    for t in threads:
        t.join()
    watcher.done.set()
    result.cpu = {k: v - cpu_before.get(k, 0.0) for k, v in cpu_by_process(plane).items()}
    times = sorted(watcher.bound.values())
    result.bound = len(times)
    result.seconds = (times[-1] - start) if times else 0.0
    if len(times) >= 10:
        lo, hi = times[len(times) // 10], times[(9 * len(times)) // 10]
        result.steady = (0.8 * len(times)) / (hi - lo) if hi > lo else 0.0
    result.latencies = [watcher.bound[n] - created[n] for n in watcher.bound if n in created]
