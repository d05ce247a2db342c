"""Core partitions (docs/dra.md, "Core partitions"): besides each whole device, sets of
contiguous NeuronCores (`neuroncores<first>-<last>`) and runs of adjacent devices
(`neurondevices<first>-<last>`, devicesets.py) published as devices of their own, which the
default scheduler allocates with no overlap through shared counters (KEP-4815,
resource.k8s.io/v1 from Kubernetes 1.35, counters.py). Pure: no I/O.

The layout: the counter sets first, in slices of their own (at most 8 sets each); then the
devices in slices of at most 64 (the limit once a device consumes counters): whole devices,
core sets (fewest cores first, then by first core: small claims pack from the low cores),
device sets. All slices are one pool. A core set may lie anywhere allocator.py accepts the run
(on a ring any run; on the trn torus a run spanning k devices inside the aligned block of
Shape.block_for_span(k)) as long as it consumes at most 2 counter sets.

Which core-set sizes are published is a choice (CORE_SET_CHOICES): every size costs devices in
the slices, and the scheduler looks at every one of them for every claim.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from neuron_k8s.allocator import Request, Resource, candidates
from neuron_k8s.topology import Shape

from .counters import MAX_DEVICES_WITH_COUNTERS, consumption, counter_slices, fits
from .devices import Versions, device
from .devicesets import device_set_device, device_sets
from .taints import tainted

CORE_SET_TYPE = "neuron_cores"
PREFIX = "neuroncores"
# The longest core set of the choice "all": one counter set's worth.
LONGEST = 32
# Core-set sizes by name: `powers` 1, 2, 4 and 8 cores at every valid start; `all` every length
# up to LONGEST (on inf2.48xlarge every contiguous run: 300 sets).
CORE_SET_CHOICES: dict[str, tuple[int, ...]] = {
    "powers": (1, 2, 4, 8),
    "all": tuple(range(1, LONGEST + 1)),
}
DEFAULT_CORE_SETS = "powers"


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


def sizes_of(choice: str | tuple[int, ...]) -> tuple[int, ...]:
    """The core-set sizes of a named choice (or the sizes themselves); ValueError for a name
    that is none."""
    if not isinstance(choice, str):
        return choice
    try:
        return CORE_SET_CHOICES[choice]
    except KeyError:
        known = ", ".join(sorted(CORE_SET_CHOICES))
        raise ValueError(f"core-set sizes must be one of {known}, got {choice!r}") from None


def core_sets(shape: Shape, choice: str | tuple[int, ...] = DEFAULT_CORE_SETS) -> list[CoreSet]:
    """The core sets published for a choice of sizes: every run allocator.py accepts whose
    counters a device may consume, fewest cores first and then by first core."""
    out = []
    for n in sorted(set(sizes_of(choice))):
        if not 1 <= n <= shape.cores:
            continue
        for m in candidates(shape, Request(Resource.NEURONCORE, n)):
            cs = CoreSet((m & -m).bit_length() - 1, n)
            if fits(shape, cs.cores):
                out.append(cs)
    return sorted(out, key=lambda cs: (cs.count, cs.first))


def core_set_device(shape: Shape, cs: CoreSet, versions: Versions) -> dict[str, Any]:
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
        "consumesCounters": consumption(shape, cs.cores),
    }


def contents(
    shape: Shape,
    node: str,
    versions: Versions,
    unhealthy: Mapping[int, str] | frozenset[int] = frozenset(),
    choice: str | tuple[int, ...] = DEFAULT_CORE_SETS,
    effect: str | None = None,
) -> list[dict[str, Any]]:
    """Every slice's contents with core partitions: counter slices, then device slices. A
    device that holds an unhealthy one (the whole device, its core sets and device sets) is
    published with the unhealthy taint of `effect`, or not at all when `effect` is None (an API
    server that drops taints). `unhealthy` maps a device to its reason ("" for none)."""
    bad = unhealthy if isinstance(unhealthy, Mapping) else dict.fromkeys(unhealthy, "")
    published: list[dict[str, Any]] = []

    def add(dev: dict[str, Any], devices: range) -> None:
        if effect is not None:
            published.append(tainted(dev, devices, bad, effect))
        elif not any(d in bad for d in devices):
            published.append(dev)

    for d in range(shape.devices):
        whole = device(shape, node, d, versions)
        add({**whole, "consumesCounters": consumption(shape, shape.cores_of(d))}, range(d, d + 1))
    for cs in core_sets(shape, choice):
        spans = range(shape.device_of(cs.first), shape.device_of(cs.cores[-1]) + 1)
        add(core_set_device(shape, cs, versions), spans)
    for ds in device_sets(shape):
        add(device_set_device(shape, ds, versions), ds.devices)
    step = MAX_DEVICES_WITH_COUNTERS
    chunks = [{"devices": published[i : i + step]} for i in range(0, len(published), step)]
    return counter_slices(shape) + chunks
