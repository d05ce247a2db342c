"""Adjacent devices on request (docs/dra.md, "Core partitions"): with core partitions, every
valid run of two or more whole devices is also published as one device of its own,
`neurondevices<first>-<last>` with resourceType `neuron_devices`, which consumes the counters of
all of its cores. A claim for one such device with `deviceCount == N` gets N adjacent devices
on every instance type, where `count: N` of whole devices means any N. Pure: no I/O.

Valid runs are topology.py's: any run on a ring (inf1, inf2), the aligned blocks of 4, 8 and 16
on the trn torus. A run must consume at most 2 counter sets (counters.py): trn2 with logical
core size 1 (8 cores a device) has no 16-device set, which `matchAttribute` on
`resource.aws.com/devicegroup16_id` covers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from neuron_k8s.topology import Shape

from .counters import consumption, fits
from .devices import Versions

DEVICE_SET_TYPE = "neuron_devices"
PREFIX = "neurondevices"


@dataclass(frozen=True)
class DeviceSet:
    """`count` adjacent whole devices from `first`."""

    first: int
    count: int

    @property
    def devices(self) -> range:
        return range(self.first, self.first + self.count)

    @property
    def name(self) -> str:
        return f"{PREFIX}{self.first}-{self.first + self.count - 1}"

    def cores(self, shape: Shape) -> range:
        cpd = shape.cores_per_device
        return range(self.first * cpd, (self.first + self.count) * cpd)


def device_set_of(name: str) -> DeviceSet:
    """The device set a device name of this module stands for; ValueError for any other."""
    first, sep, last = name.removeprefix(PREFIX).partition("-")
    if not name.startswith(PREFIX) or not sep or not first.isdigit() or not last.isdigit():
        raise ValueError(f"{name!r} is not a device set name ({PREFIX}<first>-<last>)")
    if int(last) <= int(first):
        raise ValueError(f"{name!r} is not a run of two or more devices")
    return DeviceSet(int(first), int(last) - int(first) + 1)


def is_device_set(name: str) -> bool:
    return name.startswith(PREFIX)


def device_sets(shape: Shape) -> list[DeviceSet]:
    """Every valid run of two or more devices that fits the counter limits, fewest devices
    first and then by first device (the order the scheduler tries them in)."""
    return [
        ds
        for count in sorted(shape.device_sizes())
        if count >= 2
        for first in shape.device_starts(count)
        if fits(shape, (ds := DeviceSet(first, count)).cores(shape))
    ]


def device_set_device(shape: Shape, ds: DeviceSet, versions: Versions) -> dict[str, Any]:
    cores = ds.cores(shape)
    return {
        "name": ds.name,
        "attributes": {
            "instanceType": {"string": shape.name},
            "resourceType": {"string": DEVICE_SET_TYPE},
            "draDriverVersion": {"version": versions.driver},
            "neuronDriverVersion": {"string": versions.neuron_driver},
            "deviceCount": {"int": ds.count},
            "firstDevice": {"int": ds.first},
            "coreCount": {"int": len(cores)},
            "firstCore": {"int": cores.start},
        },
        "capacity": {"cores": {"value": str(len(cores))}},
        "consumesCounters": consumption(shape, cores),
    }
