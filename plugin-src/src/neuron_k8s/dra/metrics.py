"""Prometheus metrics of one driver instance, in a registry of its own."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from neuron_k8s.allocationmetrics import AllocationCollector, NodeAllocations


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.devices = Gauge(
            "neuron_dra_driver_devices", "Devices by health.", ["health"], registry=r
        )
        self.prepares = Counter(
            "neuron_dra_driver_prepares", "Claims prepared, by outcome.", ["outcome"], registry=r
        )
        for outcome in ("ok", "error"):  # 0 from the start rather than no data
            self.prepares.labels(outcome)
        self.prepare_seconds = Histogram(
            "neuron_dra_driver_prepare_seconds",
            "Time to prepare one claim.",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10),
            registry=r,
        )
        self.unprepares = Counter("neuron_dra_driver_unprepares", "Claims unprepared.", registry=r)
        self.registered = Gauge(
            "neuron_dra_driver_registered",
            "1 once the kubelet has registered the driver.",
            registry=r,
        )

    def track_allocations(self, read: Callable[[], NodeAllocations | None]) -> None:
        """Export what the node's containers hold, read at each scrape (allocationmetrics.py)."""
        self.registry.register(AllocationCollector(read))
