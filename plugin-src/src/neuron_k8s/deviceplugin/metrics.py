"""Prometheus metrics of one plugin instance, in a registry of its own (no global state, so
that several instances can run in one test process)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

from neuron_k8s.allocationmetrics import AllocationCollector, NodeAllocations

from .api import SERVED

REFUSAL_REASONS = ("unhealthy", "invalid", "in_use")


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
            "Healthy IDs advertised Unhealthy because the kubelet holds their cores through "
            "the other resource (only with --withhold-in-use).",
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
            "Containers served by Allocate (always the kubelet's own IDs).",
            ["resource"],
            registry=r,
        )
        self.preferred = Counter(
            "neuron_device_plugin_preferred_allocations",
            "GetPreferredAllocation answers, by how they were chosen: plan (the extender's "
            "plan for the pod being admitted), free, over-plans, overlapping, fallback.",
            ["resource", "how"],
            registry=r,
        )
        self.refusals = Counter(
            "neuron_device_plugin_allocation_refusals",
            "Allocate calls refused, by reason: unhealthy, invalid (not a valid contiguous "
            "set), in_use (cores held through the other resource).",
            ["resource", "reason"],
            registry=r,
        )
        # Every series from the start, so that a dashboard shows 0 rather than no data.
        for resource in SERVED:
            for reason in REFUSAL_REASONS:
                self.refusals.labels(resource.value, reason)
        self.recorded = Counter(
            "neuron_device_plugin_pods_recorded",
            "Pods whose annotations were patched to what the kubelet assigned: confirmed (the "
            "plan, now NEURON_ALLOCATED=true), corrected (other IDs than planned), deferred "
            "(waiting for another pod's record to move).",
            ["outcome"],
            registry=r,
        )
        self.unusable_records = Counter(
            "neuron_device_plugin_unusable_pod_records",
            "Pods on the node whose record was not used (counted once per record value), by "
            "reason: allocation (neuron.k8s.local/allocation unreadable, naming another node, "
            "outside the node's shape or not matching the requests), aws_neuron_ids (likewise "
            "AWS_NEURON_IDS), requests (the pod's Neuron requests are unreadable).",
            ["reason"],
            registry=r,
        )
        self.polls = Counter(
            "neuron_device_plugin_pod_resources_polls",
            "Rounds of the reconciler (each lists the kubelet's PodResources).",
            registry=r,
        )
        self.errors = Counter(
            "neuron_device_plugin_errors",
            "Errors, by kind.",
            ["kind"],
            registry=r,
        )

    def track_allocations(self, read: Callable[[], NodeAllocations | None]) -> None:
        """Export what the node's containers hold, read at each scrape (allocationmetrics.py)."""
        self.registry.register(AllocationCollector(read))
