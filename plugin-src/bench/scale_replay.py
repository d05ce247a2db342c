"""The price of one extender call at a benchmark's size, after its run: filter and prioritize
replayed over keep-alive HTTP exactly as kube-scheduler sends them with nodeCacheCapable (the
pod and every node's name), the extender's CPU per call read from /proc, and the floor: the
same request decoded and the same answer encoded with orjson."""

from __future__ import annotations

import http.client
import json
import statistics
import time
from typing import Any

import orjson

CALLS = 200


def _pod(resource: str, count: int) -> dict[str, Any]:
    return {
        "metadata": {"name": "replay", "namespace": "default", "uid": "replay-uid"},
        "spec": {
            "schedulerName": "my-scheduler",
            "containers": [{"name": "c0", "resources": {"limits": {resource: str(count)}}}],
        },
    }


def _timed(conn: http.client.HTTPConnection, path: str, body: bytes) -> tuple[float, bytes]:
    start = time.perf_counter()
    conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    raw = resp.read()
    if resp.status != 200:
        raise SystemExit(f"{path}: HTTP {resp.status}: {raw[:200]!r}")
    return time.perf_counter() - start, raw


def _floor(request: bytes, answer: bytes, rounds: int = 50) -> float:
    reply = orjson.loads(answer)
    start = time.perf_counter()
    for _ in range(rounds):
        orjson.loads(request)
        orjson.dumps(reply)
    return (time.perf_counter() - start) / rounds


def replay(port: int, extender: Any, nodes: list[str], kinds: list[tuple[str, int]]) -> str:
    resource, count = max(set(kinds), key=kinds.count)  # the commonest request
    args = {"Pod": _pod(resource, count), "Nodes": None, "NodeNames": nodes}
    request = json.dumps(args).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    lines = []
    for verb in ("filter", "prioritize"):
        _timed(conn, f"/{verb}", request)  # warm
        cpu0 = extender.cpu_seconds()
        latencies, answer = [], b""
        for _ in range(CALLS):
            seconds, answer = _timed(conn, f"/{verb}", request)
            latencies.append(seconds)
        cpu = (extender.cpu_seconds() - cpu0) / CALLS
        floor = _floor(request, answer)
        latencies.sort()
        lines.append(
            f"{verb} at {len(nodes)} nodes ({count} x {resource}): extender CPU "
            f"{1000 * cpu:.2f} ms per call, orjson floor {1000 * floor:.2f} ms "
            f"({cpu / floor:.1f}x); latency p50 {1000 * statistics.median(latencies):.2f} ms, "
            f"p99 {1000 * latencies[int(0.99 * len(latencies))]:.2f} ms"
        )
    conn.close()
    return "\n".join(lines)
