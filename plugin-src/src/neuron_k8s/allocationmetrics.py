"""The allocation metrics the device plugin and the DRA driver both export, under the same names
and labels so that one query covers both paths (docs/metrics.md): what each container holds,
and how full and fragmented the node is. Read at scrape time from the component's own state
(a callable), so they cannot drift from it; never an API call."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from neuron_k8s.logs import get_logger
from neuron_k8s.occupancy import STATES, occupancy
from neuron_k8s.topology import Shape

log = get_logger("allocationmetrics")

DEVICE_PLUGIN = "device-plugin"
DRA = "dra"
CONTAINER_LABELS = ["namespace", "pod", "container", "node", "path"]
NODE_LABELS = ["node", "instance_type", "path"]


@dataclass(frozen=True)
class ContainerCores:
    """The cores one container holds, as a mask in the node's numbering (device d holds cores
    d*c .. d*c+c-1). Empty names: held by a container the component cannot name (yet)."""

    namespace: str
    pod: str
    container: str
    cores: int


@dataclass(frozen=True)
class NodeAllocations:
    node: str
    path: str  # DEVICE_PLUGIN or DRA
    shape: Shape
    containers: tuple[ContainerCores, ...]
    unhealthy: frozenset[int]  # devices


def merged(containers: Iterable[ContainerCores]) -> tuple[ContainerCores, ...]:
    """One entry per container, its masks joined (a container may be seen through both
    resources, or through several claims)."""
    out: dict[tuple[str, str, str], int] = {}
    for c in containers:
        key = (c.namespace, c.pod, c.container)
        out[key] = out.get(key, 0) | c.cores
    return tuple(ContainerCores(*k, cores) for k, cores in sorted(out.items()) if cores)


def families(view: NodeAllocations) -> list[GaugeMetricFamily]:
    shape = view.shape
    cores = GaugeMetricFamily(
        "neuron_container_cores", "NeuronCores a container holds.", labels=CONTAINER_LABELS
    )
    devices = GaugeMetricFamily(
        "neuron_container_devices",
        "Neuron devices a container's cores lie on.",
        labels=CONTAINER_LABELS,
    )
    held = 0
    for c in merged(view.containers):
        labels = [c.namespace, c.pod, c.container, view.node, view.path]
        mask = c.cores & ((1 << shape.cores) - 1)
        held |= mask
        cores.add_metric(labels, mask.bit_count())
        touched = {shape.device_of(i) for i in range(shape.cores) if mask >> i & 1}
        devices.add_metric(labels, len(touched))
    occ = occupancy(shape, held, view.unhealthy)
    node = [view.node, shape.name, view.path]
    node_cores = GaugeMetricFamily(
        "neuron_node_cores",
        "NeuronCores of the node by state: held (by a container), unhealthy (on an unhealthy "
        "device, not held), free.",
        labels=[*NODE_LABELS, "state"],
    )
    node_devices = GaugeMetricFamily(
        "neuron_node_devices",
        "Neuron devices of the node by state: held (any core held), unhealthy (not held), free.",
        labels=[*NODE_LABELS, "state"],
    )
    for state in STATES:
        node_cores.add_metric([*node, state], occ.cores[state])
        node_devices.add_metric([*node, state], occ.devices[state])
    runs = GaugeMetricFamily(
        "neuron_node_largest_free_run",
        "The largest free set a new container could get: adjacent free cores (unit=core), or "
        "free whole devices forming a set the instance type's topology accepts (unit=device).",
        labels=[*NODE_LABELS, "unit"],
    )
    runs.add_metric([*node, "core"], occ.largest_free_cores)
    runs.add_metric([*node, "device"], occ.largest_free_devices)
    sets = GaugeMetricFamily(
        "neuron_node_free_device_sets",
        "Free sets of whole devices the topology accepts, per request size (devices).",
        labels=[*NODE_LABELS, "devices"],
    )
    for size, count in sorted(occ.placements.items()):
        sets.add_metric([*node, str(size)], count)
    return [cores, devices, node_cores, node_devices, runs, sets]


class AllocationCollector(Collector):
    """`read` gives the node's allocations at scrape time, or None while it cannot tell (the
    families are then left out rather than reported as zero)."""

    def __init__(self, read: Callable[[], NodeAllocations | None]) -> None:
        self._read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            view = self._read()
        except Exception as err:  # a scrape must never fail on one bad object
            log.error("allocation metrics not read", error=str(err), exc_info=True)
            return
        if view is not None:
            yield from families(view)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())
