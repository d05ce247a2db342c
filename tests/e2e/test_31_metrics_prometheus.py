"""The metrics and the chart's Grafana dashboard against a real Prometheus (docs/metrics.md).

Prometheus is built from the Go module proxy and runs on the host, scraping the pods behind
the chart's metrics Services (prometheus.py). Pods are then made on a device-plugin node (two
containers, through my-scheduler and the extender) and on the DRA node (a whole device and a
core set), plus a pod that waits for a rule (7 devices on trn1), and every query of the
dashboard is evaluated through the HTTP API: each must return series, and their values must be
what the pods' records and claims say. The cluster may be shared with other tests: what a node
holds is read from the API at the time (node_state.py), and compared until both agree."""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import NEURON, NEURONCORE, Cluster, Pods, needs_kind, wait_for
from dra_claims import Claims, dra_node
from kubernetes import client
from node_state import longest, node_state
from prometheus import Prometheus, running_prometheus

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = json.loads((ROOT / "charts/neuron/dashboards/neuron.json").read_text())
TRN1 = "trn1.32xlarge"


@pytest.fixture(scope="module")
def prometheus(cluster: Cluster) -> Iterator[Prometheus]:
    needs_kind()
    with running_prometheus(cluster) as prom:
        yield prom


@dataclass
class Workload:
    namespace: str
    # (pod, container) -> (node, path, cores, devices the cores lie on)
    containers: dict[tuple[str, str], tuple[str, str, list[int], set[int]]]
    nodes: set[str]


@pytest.fixture(scope="module")
def workload(cluster: Cluster, prometheus: Prometheus) -> Iterator[Workload]:
    """Made once Prometheus scrapes, so that the extender's rates see the binds."""
    ns = f"e2e-metrics-{uuid.uuid4().hex[:8]}"
    cluster.core.create_namespace({"metadata": {"name": ns}})
    pods = Pods(cluster, ns)
    try:
        pods.create("dp-pod", [{NEURONCORE: 2}, {NEURON: 1}])
        pods.create("waits-for-rule", [{NEURON: 7}], node_type=TRN1)
        claims = Claims(cluster, ns, dra_node(cluster, TRN1))
        claims.template("one-device", 1)
        claims.pod("dra-device", "one-device")
        claims.core_template("one-core", 1)
        claims.pod("dra-cores", "one-core")
        containers = {}
        pods.wait_running("dp-pod")
        record = pods.allocation("dp-pod")
        per_device = node_state(cluster, record["node"]).cores_per_device
        for c in record["containers"]:
            devices = {x // per_device for x in c["cores"]}
            containers[("dp-pod", c["name"])] = (
                record["node"],
                "device-plugin",
                c["cores"],
                devices,
            )
        for name in ("dra-device", "dra-cores"):
            claims.running(name)
            cores = claims.claimed_cores(name)
            devices = {x // claims.cores_per_device for x in cores}
            containers[(name, "c0")] = (claims.node, "dra", cores, devices)
        yield Workload(ns, containers, {n for n, _, _, _ in containers.values()})
    finally:
        cluster.core.delete_collection_namespaced_pod(ns, grace_period_seconds=0)
        wait_for(f"{ns} pods gone", lambda: not cluster.core.list_namespaced_pod(ns).items, 120)
        cluster.core.delete_namespace(ns)


# --- reading the dashboard ----------------------------------------------------------------------


def expr(title: str, ref: str = "A") -> str:
    panel = next(p for p in DASHBOARD["panels"] if p["title"] == title)
    return str(next(t["expr"] for t in panel["targets"] if t["refId"] == ref))


def agree(what: str, read: Callable[[], tuple[Any, Any]], timeout: float = 60) -> None:
    """Until read() gives (expected, actual) that are equal; fail with the last pair."""
    deadline = time.monotonic() + timeout
    while True:
        expected, actual = read()
        if expected == actual:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: expected {expected!r}, Prometheus says {actual!r}")
        time.sleep(1)


# --- the tests -----------------------------------------------------------------------------------
QUERIES = [(p["title"], t["refId"], t["expr"]) for p in DASHBOARD["panels"] for t in p["targets"]]


@pytest.mark.parametrize(
    ("title", "ref", "query"), QUERIES, ids=[f"{t}/{r}" for t, r, _ in QUERIES]
)
def test_every_dashboard_query_returns_series(
    prometheus: Prometheus, workload: Workload, title: str, ref: str, query: str
) -> None:
    wait_for(f"series for {title} ({ref})", lambda: prometheus.query(query), 60)


def test_extender_latency_and_outcomes_cover_the_binds_the_test_caused(
    cluster: Cluster, prometheus: Prometheus, workload: Workload
) -> None:
    # A bind now, under whichever extender runs (another test may have restarted it). The
    # probe goes when this test ends: the per-container test counts the workload's containers
    # only, and failed in CI when a scrape had caught the probe before it read.
    pods = Pods(cluster, workload.namespace)
    pods.create("bind-probe", [{NEURONCORE: 1}])
    try:
        pods.wait_running("bind-probe")
        _extender_latency_and_outcomes(prometheus)
    finally:
        pods.delete("bind-probe")


def _extender_latency_and_outcomes(prometheus: Prometheus) -> None:
    title = "Extender latency (p99 by verb)"
    for ref in ("A", "B"):

        def latencies(ref: str = ref) -> dict[str, float] | None:
            found = {k[0]: v for k, v in prometheus.values(expr(title, ref), "verb").items()}
            # NaN until a verb was called between two scrapes: the pod waiting for a rule is
            # filtered again and again, and the test's pod was bound once Prometheus ran.
            ok = all(not math.isnan(found.get(v, math.nan)) for v in ("filter", "bind"))
            return found if ok else None

        latency = wait_for(f"{title} ({ref}) for filter and bind", latencies, 60)
        assert all(0 < latency[v] <= 5 for v in ("filter", "bind")), latency
    outcomes = "Extender outcomes"
    requests = prometheus.values(expr(outcomes, "A"), "verb", "code")
    assert requests[("bind", "200")] > 0 and requests[("filter", "200")] > 0, requests

    def bound() -> dict[str, float] | None:
        found = {k[0]: v for k, v in prometheus.values(expr(outcomes, "B"), "outcome").items()}
        return found if found.get("bound", 0) > 0 else None

    binds = wait_for("a bind with outcome bound", bound, 60)
    assert binds["bound"] > 0, binds
    reservations = prometheus.values(expr(outcomes, "C"))
    raw = prometheus.values("max(neuron_extender_reservations)")
    assert reservations == raw and set(reservations) == {()}, (reservations, raw)


def test_each_container_reports_the_cores_and_devices_its_record_or_claim_gives(
    prometheus: Prometheus, workload: Workload
) -> None:
    keys = ("namespace", "pod", "container", "node", "path")

    def mine(query: str) -> dict[tuple[str, ...], float]:
        return {
            k[1:]: v
            for k, v in prometheus.values(query, *keys).items()
            if k[0] == workload.namespace
        }

    items = workload.containers.items()
    cores = {(p, c, n, path): float(len(cs)) for (p, c), (n, path, cs, _) in items}
    devices = {(p, c, n, path): float(len(ds)) for (p, c), (n, path, _, ds) in items}
    agree("cores per container", lambda: (cores, mine(expr("Containers holding NeuronCores", "A"))))
    agree(
        "devices per container",
        lambda: (devices, mine(expr("Containers holding NeuronCores", "B"))),
    )
    assert {path for _, path, _, _ in workload.containers.values()} == {"device-plugin", "dra"}


def _per_node(prometheus: Prometheus, query: str, nodes: set[str]) -> dict[str, float]:
    return {k[0]: v for k, v in prometheus.values(query, "node").items() if k[0] in nodes}


def test_each_nodes_held_and_allocatable_cores_are_what_the_api_says_it_holds(
    cluster: Cluster, prometheus: Prometheus, workload: Workload
) -> None:
    title = "NeuronCores held vs allocatable, per node"

    def read() -> tuple[Any, Any]:
        states = {n: node_state(cluster, n) for n in workload.nodes}
        expected = {
            n: (
                float(len(s.held)),
                float(
                    sum(
                        1
                        for c in range(s.devices * s.cores_per_device)
                        if c in s.held or c // s.cores_per_device not in s.sick
                    )
                ),
            )
            for n, s in states.items()
        }
        held = _per_node(prometheus, expr(title, "A"), workload.nodes)
        allocatable = _per_node(prometheus, expr(title, "B"), workload.nodes)
        return expected, {n: (held.get(n), allocatable.get(n)) for n in workload.nodes}

    agree("held and allocatable cores per node", read)


def test_per_instance_type_sums_the_nodes_of_each_type(
    prometheus: Prometheus, workload: Workload
) -> None:
    title = "NeuronCores held vs allocatable, per instance type"
    for ref in ("A", "B"):

        def read(ref: str = ref) -> tuple[Any, Any]:
            expected: dict[str, float] = {}
            per_node = expr("NeuronCores held vs allocatable, per node", ref)
            for series in prometheus.query(per_node):
                t = series["metric"]["instance_type"]
                expected[t] = expected.get(t, 0.0) + float(series["value"][1])
            per_type = prometheus.values(expr(title, ref), "instance_type")
            return expected, {k[0]: v for k, v in per_type.items()}

        agree(f"{title} ({ref})", read)


def test_fragmentation_and_free_sets_follow_the_free_cores_and_the_topology(
    cluster: Cluster, prometheus: Prometheus, workload: Workload
) -> None:
    def read() -> tuple[Any, Any]:
        states = {n: node_state(cluster, n) for n in workload.nodes}
        expected = {}
        for n, s in states.items():
            free = s.free()
            count = sum(free)
            fragmentation = (count - longest(free)) / max(count, 1)
            largest = max((z for z in s.sizes() if s.placements(z)), default=0)
            sets = {str(z): float(s.placements(z)) for z in s.sizes()}
            expected[n] = (round(fragmentation, 6), float(largest), sets)
        frag = _per_node(prometheus, expr("Fragmentation per node"), workload.nodes)
        largest_run = _per_node(
            prometheus, expr("Largest free device set per node"), workload.nodes
        )
        sets_now: dict[str, dict[str, float]] = {}
        for (node, size), v in prometheus.values(
            expr("Free device sets per size"), "node", "devices"
        ).items():
            if node in workload.nodes:
                sets_now.setdefault(node, {})[size] = v
        actual = {
            n: (
                round(frag[n], 6) if n in frag else None,
                largest_run.get(n),
                sets_now.get(n),
            )
            for n in workload.nodes
        }
        return expected, actual

    agree("fragmentation, largest free device set and free sets per node", read)


def test_unhealthy_devices_are_the_nodes_unhealthy_devices_not_held(
    cluster: Cluster, prometheus: Prometheus, workload: Workload
) -> None:
    def read() -> tuple[Any, Any]:
        expected = {}
        for n in workload.nodes:
            s = node_state(cluster, n)
            held = {c // s.cores_per_device for c in s.held}
            expected[n] = float(len(s.sick - held))
        return expected, _per_node(prometheus, expr("Unhealthy devices per node"), workload.nodes)

    agree("unhealthy devices per node", read)


def _neuron_requests(pod: client.V1Pod) -> bool:
    for c in (pod.spec.init_containers or []) + pod.spec.containers:
        r = c.resources
        for amounts in (r.limits or {}, r.requests or {}) if r else ():
            if any(
                k.startswith("aws.amazon.com/neuron") and int(v) > 0 for k, v in amounts.items()
            ):
                return True
    return False


def test_pending_neuron_pods_count_the_pod_that_waits_for_a_rule(
    cluster: Cluster, prometheus: Prometheus, workload: Workload
) -> None:
    def read() -> tuple[Any, Any]:
        waiting = [
            p
            for p in cluster.core.list_pod_for_all_namespaces().items
            if not p.spec.node_name
            and p.status.phase not in ("Succeeded", "Failed")
            and _neuron_requests(p)
        ]
        assert any(p.metadata.name == "waits-for-rule" for p in waiting), "the rule pod is bound"
        value = prometheus.values(expr("Pending Neuron pods"))
        return float(len(waiting)), value.get(())

    agree("pending Neuron pods", read)


def test_admission_refusals_are_the_increase_of_the_components_counters(
    prometheus: Prometheus, workload: Workload
) -> None:
    title = "Admission refusals (last hour)"

    def moved(metric: str) -> str:
        return f"max_over_time({metric}[1h]) - min_over_time({metric}[1h])"

    raw = {
        "A": "sum by (reason) (" + moved("neuron_device_plugin_allocation_refusals_total") + ")",
        "B": "sum(" + moved('neuron_dra_driver_prepares_total{outcome="error"}') + ")",
    }
    for ref, counted in raw.items():
        keys = ("reason",) if ref == "A" else ()
        shown = prometheus.values(expr(title, ref), *keys)
        changed = prometheus.values(counted, *keys)
        assert shown and set(shown) == set(changed), (shown, changed)
        # Where a counter did not move, Prometheus shows no refusal; where it moved, some.
        assert {k: v > 0 for k, v in shown.items()} == {k: v > 0 for k, v in changed.items()}
