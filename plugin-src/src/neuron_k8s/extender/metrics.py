"""Prometheus metrics of the extender, in a registry of its own (no process-global state, so
several extenders can live in one test process)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .state import ClusterState

# kube-scheduler's default extender timeout is 5 s; filter should sit in the lowest buckets.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class _StateCollector(Collector):
    """Gauges read from the state at scrape time, so they cannot drift from it."""

    def __init__(
        self, state: ClusterState, ready: Callable[[], bool], pending: Callable[[], int] | None
    ) -> None:
        self._state = state
        self._ready = ready
        self._pending = pending

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        t = self._state.totals()
        unusable = CounterMetricFamily(
            "neuron_extender_unusable_records",
            "Pod records ignored (unreadable, unbound, other_node, invalid), once per change",
            labels=["reason"],
        )
        for reason, n in sorted(self._state.rejections().items()):
            unusable.add_metric([reason], n)
        yield unusable
        yield GaugeMetricFamily(
            "neuron_extender_ready", "1 once nodes and pods have been listed", value=self._ready()
        )
        yield GaugeMetricFamily("neuron_extender_nodes", "Nodes known", value=t["nodes"])
        yield GaugeMetricFamily(
            "neuron_extender_neuron_nodes", "Nodes with Neuron capacity", value=t["neuron_nodes"]
        )
        yield GaugeMetricFamily(
            "neuron_extender_neuroncores", "NeuronCores on known nodes", value=t["cores"]
        )
        yield GaugeMetricFamily(
            "neuron_extender_neuroncores_used",
            "NeuronCores held by pods or reservations",
            value=t["cores_used"],
        )
        yield GaugeMetricFamily(
            "neuron_extender_pods", "Pods holding Neuron cores by annotation", value=t["pods"]
        )
        yield GaugeMetricFamily(
            "neuron_extender_reservations",
            "Reservations of binds in flight",
            value=t["reservations"],
        )
        if self._pending is not None:
            yield GaugeMetricFamily(
                "neuron_extender_pending_pods",
                "Pods not bound to a node whose containers ask for Neuron devices or cores",
                value=self._pending(),
            )


class Metrics:
    def __init__(
        self,
        state: ClusterState,
        ready: Callable[[], bool],
        pending: Callable[[], int] | None = None,
    ) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "neuron_extender_requests",
            "HTTP requests by path and status code",
            ["verb", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "neuron_extender_request_duration_seconds",
            "Time to answer a verb",
            ["verb"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.binds = Counter(
            "neuron_extender_binds", "Bind outcomes", ["outcome"], registry=self.registry
        )
        self.filtered = Counter(
            "neuron_extender_filter_nodes",
            "Nodes judged by filter, by result",
            ["result"],
            registry=self.registry,
        )
        self.scheduler_restarts = Counter(
            "neuron_extender_scheduler_restarts",
            "Patches that roll my-scheduler for a new client CA, by outcome (patched, failed)",
            ["outcome"],
            registry=self.registry,
        )
        self.registry.register(_StateCollector(state, ready, pending))

    def render(self) -> bytes:
        return generate_latest(self.registry)
