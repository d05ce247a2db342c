"""How full and how fragmented one node is: its cores and devices counted free, held or
unhealthy, and the largest free set a new container could still get, by the topology's rules
(topology.py). What the device plugin and the DRA driver export per node (docs/metrics.md).
Pure: no I/O.

The three states partition the node: held (by a container, whatever the device's health:
the kubelet counts it held until its pod goes), unhealthy (on an unhealthy device and not
held), free (the rest). A device is held when any of its cores is."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from neuron_k8s.topology import Shape


def mask_of(bits: Iterable[int]) -> int:
    m = 0
    for b in bits:
        m |= 1 << b
    return m


def longest_run(bits: int, width: int) -> int:
    """The length of the longest run of set bits among the low `width` bits."""
    best = run = 0
    for i in range(width):
        run = run + 1 if bits >> i & 1 else 0
        best = max(best, run)
    return best


def free_placements(shape: Shape, free_devices: int) -> dict[int, int]:
    """For each whole-device request size the shape accepts, how many valid sets of that many
    devices are free (`free_devices`: a mask of free devices)."""
    out = {}
    for size in shape.device_sizes():
        block = (1 << size) - 1
        out[size] = sum(
            1 for start in shape.device_starts(size) if free_devices >> start & block == block
        )
    return out


@dataclass(frozen=True)
class Occupancy:
    cores: dict[str, int]  # state (free, held, unhealthy) -> cores
    devices: dict[str, int]  # state -> devices
    largest_free_cores: int  # longest run of adjacent free cores
    largest_free_devices: int  # largest valid set of whole devices that is free
    placements: dict[int, int]  # whole-device request size -> free valid sets of that size


STATES = ("free", "held", "unhealthy")


def occupancy(shape: Shape, held_cores: int, unhealthy_devices: Iterable[int]) -> Occupancy:
    """The node's counts from the core mask its containers hold and its unhealthy devices
    (IDs outside the shape are ignored)."""
    all_cores = (1 << shape.cores) - 1
    held_cores &= all_cores
    sick = {d for d in unhealthy_devices if 0 <= d < shape.devices}
    sick_cores = 0
    for d in sick:
        sick_cores |= mask_of(shape.cores_of(d))
    held_devices = {shape.device_of(c) for c in range(shape.cores) if held_cores >> c & 1}
    free_cores = all_cores & ~held_cores & ~sick_cores
    free_devices = set(range(shape.devices)) - held_devices - sick
    placements = free_placements(shape, mask_of(free_devices))
    return Occupancy(
        cores={
            "free": free_cores.bit_count(),
            "held": held_cores.bit_count(),
            "unhealthy": (sick_cores & ~held_cores).bit_count(),
        },
        devices={
            "free": len(free_devices),
            "held": len(held_devices),
            "unhealthy": len(sick - held_devices),
        },
        largest_free_cores=longest_run(free_cores, shape.cores),
        largest_free_devices=max((s for s, n in placements.items() if n), default=0),
        placements=placements,
    )
