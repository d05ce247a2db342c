"""Core partitions (docs/dra.md, "Core partitions"): besides each whole device, sets of
contiguous NeuronCores published as devices of their own, which the default scheduler allocates
with no overlap through shared counters (KEP-4815, feature gate DRAPartitionableDevices): each
core is a counter of 1, a core set consumes the counters of its cores, and a whole device those
of all of its cores. Pure: no I/O.

resource.k8s.io/v1 in 1.34 keeps counters per slice: a device consumes only counters of its own
slice, a slice holds at most 32 counters and, once a device in it consumes counters, at most 64
devices. So the node's devices are cut into groups of consecutive devices, one slice each, and a
core set never leaves its group. A group is the largest of 4, 2 or 1 devices whose every run of
contiguous cores fits those limits (on trn1's torus, 4 is an aligned block, and every run inside
it is one topology.py accepts); where even one device has too many cores for that, the runs
stop at the longest size that fits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from neuron_k8s.topology import Rule, Shape

from .devices import Versions, device_name

# resource.k8s.io/v1 (1.34) limits, pkg/apis/resource/validation and types.go.
MAX_COUNTERS_PER_SLICE = 32  # ResourceSliceMaxSharedCounters, summed over its counter sets
MAX_DEVICES_WITH_COUNTERS = 64  # per slice, once any of its devices consumes counters
MAX_DEVICE_COUNTERS_PER_SLICE = 1024  # ResourceSliceMaxDeviceCountersPerSlice
GROUP_SIZES = (4, 2, 1)
CORE_SET_TYPE = "neuron_cores"
PREFIX = "neuroncores"


@dataclass(frozen=True)
class CoreSet:
    """`count` contiguous cores from `first`, in the device plugin's core numbering."""

    first: int
    count: int

    @property
    def cores(self) -> range:
        return range(self.first, self.first + self.count)

    @property
    def name(self) -> str:
        return f"{PREFIX}{self.first}-{self.first + self.count - 1}"


def core_set_of(name: str) -> CoreSet:
    """The core set a device name of this module stands for; ValueError for any other name."""
    first, sep, last = name.removeprefix(PREFIX).partition("-")
    if not name.startswith(PREFIX) or not sep or not first.isdigit() or not last.isdigit():
        raise ValueError(f"{name!r} is not a core set name ({PREFIX}<first>-<last>)")
    if int(last) < int(first):
        raise ValueError(f"{name!r} ends before it starts")
    return CoreSet(int(first), int(last) - int(first) + 1)


def is_core_set(name: str) -> bool:
    return name.startswith(PREFIX)


@dataclass(frozen=True)
class Layout:
    """How a shape's cores are cut: devices per group, and the longest core set published."""

    group_devices: int
    longest: int


def _runs(cores: int, longest: int) -> tuple[int, int]:
    """How many runs of 1..longest contiguous cores `cores` cores hold, and their total length."""
    sizes = range(1, longest + 1)
    return sum(cores - n + 1 for n in sizes), sum(n * (cores - n + 1) for n in sizes)


def _fits(group_devices: int, cores: int, longest: int) -> bool:
    runs, length = _runs(cores, longest)
    return (
        cores <= MAX_COUNTERS_PER_SLICE
        and runs + group_devices <= MAX_DEVICES_WITH_COUNTERS
        and length + cores <= MAX_DEVICE_COUNTERS_PER_SLICE
    )


def layout(shape: Shape) -> Layout:
    cpd = shape.cores_per_device
    for g in GROUP_SIZES:
        if g > shape.devices or (shape.rule is Rule.ALIGNED and shape.devices % g):
            continue
        if _fits(g, g * cpd, g * cpd):
            return Layout(g, g * cpd)
    longest = next(n for n in range(cpd, 0, -1) if _fits(1, cpd, n))
    return Layout(1, longest)


def groups(shape: Shape) -> list[range]:
    """The device indices of each group, in order (the last one shorter on a ring)."""
    g = layout(shape).group_devices
    return [range(s, min(s + g, shape.devices)) for s in range(0, shape.devices, g)]


def core_sets(shape: Shape, group: range) -> list[CoreSet]:
    """Every run of contiguous cores inside the group, up to the layout's longest, shortest
    first and then by first core (the order the scheduler tries them in, so small claims pack
    from the low cores)."""
    cpd = shape.cores_per_device
    start, end = group.start * cpd, group.stop * cpd
    longest = min(layout(shape).longest, end - start)
    return [CoreSet(f, n) for n in range(1, longest + 1) for f in range(start, end - n + 1)]


def counter_set(index: int) -> str:
    return f"cores-{index}"


def _consumes(index: int, cores: range) -> list[dict[str, Any]]:
    return [
        {"counterSet": counter_set(index), "counters": {f"core{c}": {"value": "1"} for c in cores}}
    ]


def _core_set_device(shape: Shape, cs: CoreSet, versions: Versions, index: int) -> dict[str, Any]:
    first_device, last_device = shape.device_of(cs.first), shape.device_of(cs.cores[-1])
    return {
        "name": cs.name,
        "attributes": {
            "instanceType": {"string": shape.name},
            "resourceType": {"string": CORE_SET_TYPE},
            "draDriverVersion": {"version": versions.driver},
            "neuronDriverVersion": {"string": versions.neuron_driver},
            "coreCount": {"int": cs.count},
            "firstCore": {"int": cs.first},
            "firstDevice": {"int": first_device},
            "deviceCount": {"int": last_device - first_device + 1},
        },
        "capacity": {"cores": {"value": str(cs.count)}},
        "consumesCounters": _consumes(index, cs.cores),
    }


def contents(
    shape: Shape,
    whole: list[dict[str, Any]],
    versions: Versions,
    unhealthy: frozenset[int] = frozenset(),
) -> list[dict[str, Any]]:
    """One slice's contents per group: its counters, its healthy whole devices (from `whole`,
    devices.devices()) made to consume their cores, and its core sets on healthy devices."""
    by_name = {d["name"]: d for d in whole}
    out = []
    for index, group in enumerate(groups(shape)):
        cores = range(group.start * shape.cores_per_device, group.stop * shape.cores_per_device)
        published = []
        for d in group:
            dev = by_name.get(device_name(d))
            if dev is not None:
                published.append({**dev, "consumesCounters": _consumes(index, shape.cores_of(d))})
        for cs in core_sets(shape, group):
            if not {shape.device_of(c) for c in cs.cores} & unhealthy:
                published.append(_core_set_device(shape, cs, versions, index))
        counters = {f"core{c}": {"value": "1"} for c in cores}
        out.append(
            {
                "devices": published,
                "sharedCounters": [{"name": counter_set(index), "counters": counters}],
            }
        )
    return out
