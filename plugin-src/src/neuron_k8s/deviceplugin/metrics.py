"""Prometheus metrics of one plugin instance, in a registry of its own (no global state, so
that several instances can run in one test process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.info = Gauge(
            "neuron_device_plugin_info",
            "Constant 1, labelled with how the plugin runs.",
            ["mode", "shape", "api"],
            registry=r,
        )
        self.devices = Gauge(
            "neuron_device_plugin_devices",
            "IDs advertised per resource, by health (unhealthy devices and their cores).",
            ["resource", "health"],
            registry=r,
        )
        self.withheld = Gauge(
            "neuron_device_plugin_withheld",
            "Healthy IDs advertised Unhealthy because they are in use through the other "
            "resource (or under other IDs).",
            ["resource"],
            registry=r,
        )
        self.registered = Gauge(
            "neuron_device_plugin_registered",
            "1 when the resource is registered with the kubelet.",
            ["resource"],
            registry=r,
        )
        self.registrations = Counter(
            "neuron_device_plugin_registrations",
            "Successful registrations with the kubelet.",
            ["resource"],
            registry=r,
        )
        self.allocations = Counter(
            "neuron_device_plugin_allocations",
            "Containers allocated, by where the IDs came from (extender or kubelet).",
            ["resource", "source"],
            registry=r,
        )
        self.preferred = Counter(
            "neuron_device_plugin_preferred_allocations",
            "GetPreferredAllocation answers, by how they were chosen.",
            ["resource", "how"],
            registry=r,
        )
        self.conflicts = Counter(
            "neuron_device_plugin_allocation_conflicts",
            "Allocate calls refused because the set overlaps cores already in use.",
            ["resource"],
            registry=r,
        )
        self.corrected = Counter(
            "neuron_device_plugin_allocations_corrected",
            "Pods whose allocation annotations were rewritten to what their containers really "
            "got (admitted) or, for a pod still waiting, to the set a swap left for it (pending).",
            ["kind"],
            registry=r,
        )
        self.errors = Counter(
            "neuron_device_plugin_errors",
            "Errors, by kind.",
            ["kind"],
            registry=r,
        )
