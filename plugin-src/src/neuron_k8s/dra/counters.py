"""The shared counters that keep core partitions apart (KEP-4815, resource.k8s.io/v1 from
Kubernetes 1.35): every NeuronCore is a counter of 1, and every published device that holds a
core (a whole device, a core set, a device set) consumes that counter, so that the scheduler
never allocates one core twice. Pure: no I/O.

Since 1.35 a ResourceSlice holds devices or counter sets, never both, and a device consumes
counters of any slice of its pool. The limits (k8s.io/api resource/v1 types.go) shape the
layout: a counter set has at most 32 counters, so the node's cores are cut into sets
`cores-<k>` of as many consecutive whole devices as fit; a slice holds at most 8 sets; a device
consumes from at most 2 sets (32 counters each), so a published set of cores may touch at most
2 counter sets.
"""

from __future__ import annotations

from typing import Any

from neuron_k8s.topology import Shape

MAX_COUNTERS_PER_SET = 32  # ResourceSliceMaxCountersPerCounterSet
MAX_COUNTER_SETS_PER_SLICE = 8  # ResourceSliceMaxCounterSets
MAX_SETS_PER_DEVICE = 2  # ResourceSliceMaxDeviceCounterConsumptionsPerDevice
MAX_COUNTERS_PER_CONSUMPTION = 32  # ResourceSliceMaxCountersPerDeviceCounterConsumption
# ResourceSliceMaxDevicesWithAdvancedFeatures: once a device consumes counters or has taints.
MAX_DEVICES_WITH_COUNTERS = 64
SET_PREFIX = "cores-"
ONE = {"value": "1"}


def devices_per_set(shape: Shape) -> int:
    """Whole devices per counter set: as many as fit in 32 counters (a device's cores are never
    split between sets, so a whole device always consumes one set)."""
    return max(1, MAX_COUNTERS_PER_SET // shape.cores_per_device)


def set_name(index: int) -> str:
    return f"{SET_PREFIX}{index}"


def counter_name(core: int) -> str:
    return f"core{core}"


def set_of(shape: Shape, core: int) -> int:
    """The index of the counter set holding a core's counter."""
    return shape.device_of(core) // devices_per_set(shape)


def counter_sets(shape: Shape) -> list[dict[str, Any]]:
    """Every counter set of the node, in order: its cores, each a counter of 1."""
    per = devices_per_set(shape) * shape.cores_per_device
    return [
        {
            "name": set_name(k),
            "counters": {counter_name(c): ONE for c in range(start, min(start + per, shape.cores))},
        }
        for k, start in enumerate(range(0, shape.cores, per))
    ]


def _span(shape: Shape, cores: range) -> range:
    """The indices of the counter sets a run of cores touches."""
    return range(set_of(shape, cores[0]), set_of(shape, cores[-1]) + 1) if cores else range(0)


def fits(shape: Shape, cores: range) -> bool:
    """Whether a device holding the run `cores` stays within the per-device counter limits:
    at most 2 counter sets (each holds at most 32 counters, so no entry can exceed 32)."""
    return len(_span(shape, cores)) <= MAX_SETS_PER_DEVICE


def consumption(shape: Shape, cores: range) -> list[dict[str, Any]] | None:
    """What a device holding the run `cores` consumes, one entry per counter set it touches;
    None when that is more than a device may consume (so the device cannot be published)."""
    if not fits(shape, cores):
        return None
    per = devices_per_set(shape) * shape.cores_per_device
    out = []
    for k in _span(shape, cores):
        part = range(max(cores.start, k * per), min(cores.stop, (k + 1) * per))
        out.append({"counterSet": set_name(k), "counters": {counter_name(c): ONE for c in part}})
    return out


def counter_slices(shape: Shape) -> list[dict[str, Any]]:
    """Slice contents holding the counter sets only, at most 8 sets each."""
    sets = counter_sets(shape)
    step = MAX_COUNTER_SETS_PER_SLICE
    return [{"sharedCounters": sets[i : i + step]} for i in range(0, len(sets), step)]
