"""Neuron topology per instance type: how many devices and cores a node has, and which sets of
devices may be handed to one container. Pure: no I/O.

Rules (from the Neuron SDK scheduler documentation, see the project README for the reasoning):
- RING (inf1, inf2, trn1.2xlarge, and any explicit fake shape): any run of contiguous devices.
  There is no wrap-around: a set such as {11, 0} would give the runtime non-contiguous core
  indices, which it refuses ("MLA logical Ids must be contiguous").
- ALIGNED (trn1.32xlarge, trn1n.32xlarge, trn2.48xlarge, trn2u.48xlarge: a 4x4 2D torus): whole
  device requests must be 1, 4, 8 or 16 devices, on a block aligned to its own size
  ({0-3}, {4-7}, ...; {0-7}, {8-15}). trn2 has the same 16-device torus as trn1.32xlarge and no
  published rule, so it gets the same one.
Requesting one device, one core, or everything a node has is always valid.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Rule(Enum):
    RING = "ring"
    ALIGNED = "aligned"


# Device counts an ALIGNED node accepts for whole-device requests, largest first.
ALIGNED_SIZES = (16, 8, 4, 1)

# trn2's physical cores per device; its logical cores per device are this divided by the LNC.
TRN2_PHYSICAL_CORES = 8
DEFAULT_LNC = 2

# instance type -> (devices, cores per device, rule). trn2 cores are filled in by shape_for().
INSTANCE_TYPES: dict[str, tuple[int, int, Rule]] = {
    "inf1.xlarge": (1, 4, Rule.RING),
    "inf1.2xlarge": (1, 4, Rule.RING),
    "inf1.6xlarge": (4, 4, Rule.RING),
    "inf1.24xlarge": (16, 4, Rule.RING),
    "inf2.xlarge": (1, 2, Rule.RING),
    "inf2.8xlarge": (1, 2, Rule.RING),
    "inf2.24xlarge": (6, 2, Rule.RING),
    "inf2.48xlarge": (12, 2, Rule.RING),
    "trn1.2xlarge": (1, 2, Rule.RING),
    "trn1.32xlarge": (16, 2, Rule.ALIGNED),
    "trn1n.32xlarge": (16, 2, Rule.ALIGNED),
    "trn2.48xlarge": (16, TRN2_PHYSICAL_CORES, Rule.ALIGNED),
    "trn2u.48xlarge": (16, TRN2_PHYSICAL_CORES, Rule.ALIGNED),
}

# Upper bound on a fake shape, so that a typo cannot make the plugin advertise a million devices.
MAX_DEVICES = 64
MAX_CORES_PER_DEVICE = 16


class UnknownInstanceType(ValueError):
    """The instance type is not a Neuron instance type this project knows."""


@dataclass(frozen=True)
class Shape:
    """What one node has: devices, cores per device, and the rule for device sets."""

    devices: int
    cores_per_device: int
    rule: Rule = Rule.RING
    instance_type: str | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.devices <= MAX_DEVICES:
            raise ValueError(f"devices must be between 1 and {MAX_DEVICES}, got {self.devices}")
        if not 1 <= self.cores_per_device <= MAX_CORES_PER_DEVICE:
            raise ValueError(
                f"cores per device must be between 1 and {MAX_CORES_PER_DEVICE}, "
                f"got {self.cores_per_device}"
            )
        if self.rule is Rule.ALIGNED and self.devices not in ALIGNED_SIZES:
            raise ValueError(f"an aligned topology needs 1, 4, 8 or 16 devices, got {self.devices}")

    @property
    def cores(self) -> int:
        return self.devices * self.cores_per_device

    @property
    def name(self) -> str:
        return self.instance_type or f"{self.devices}x{self.cores_per_device}"

    def device_of(self, core: int) -> int:
        return core // self.cores_per_device

    def cores_of(self, device: int) -> range:
        start = device * self.cores_per_device
        return range(start, start + self.cores_per_device)

    def device_sizes(self) -> tuple[int, ...]:
        """Whole-device request sizes this shape accepts, largest first."""
        if self.rule is Rule.ALIGNED:
            return tuple(s for s in ALIGNED_SIZES if s <= self.devices)
        return tuple(range(self.devices, 0, -1))

    def device_starts(self, count: int) -> range:
        """First devices of the valid sets of `count` whole devices (empty when none is valid)."""
        if count < 1 or count > self.devices:
            return range(0)
        if self.rule is Rule.ALIGNED and count not in (1, self.devices):
            if count not in ALIGNED_SIZES:
                return range(0)
            return range(0, self.devices, count)
        return range(self.devices - count + 1)

    def block_for_span(self, span: int) -> int:
        """Size of the aligned block that a set spanning `span` devices must lie within."""
        if self.rule is Rule.RING or span <= 1:
            return span
        return next(s for s in reversed(ALIGNED_SIZES) if s >= span)

    def device_request_error(self, count: int) -> str | None:
        """Why `count` whole devices can never be had on this shape, or None if they can."""
        if count < 1:
            return f"a request must be for at least 1 device, got {count}"
        if count > self.devices:
            return (
                f"Instance type {self.name} has {self.devices} Neuron devices; "
                f"the pod asks for {count}"
            )
        if not self.device_starts(count):
            sizes = ", ".join(str(s) for s in reversed(self.device_sizes()))
            return (
                f"Instance type {self.name} does not support requests for device: {count}. "
                f"Please request a different number of devices (valid: {sizes})."
            )
        return None

    def core_request_error(self, count: int) -> str | None:
        """Why `count` cores can never be had on this shape, or None if they can."""
        if count < 1:
            return f"a request must be for at least 1 core, got {count}"
        if count > self.cores:
            return (
                f"Instance type {self.name} has {self.cores} NeuronCores; the pod asks for {count}"
            )
        return None


def lnc_cores_per_device(lnc: int) -> int:
    """trn2 logical cores per device for a logical NeuronCore size (1 or 2)."""
    if lnc not in (1, 2):
        raise ValueError(f"logical NeuronCore size must be 1 or 2, got {lnc}")
    return TRN2_PHYSICAL_CORES // lnc


def shape_for(instance_type: str, lnc: int = DEFAULT_LNC) -> Shape:
    """The shape of a known Neuron instance type; `lnc` matters for trn2 only."""
    try:
        devices, cores_per_device, rule = INSTANCE_TYPES[instance_type]
    except KeyError:
        known = ", ".join(sorted(INSTANCE_TYPES))
        raise UnknownInstanceType(
            f"{instance_type!r} is not a Neuron instance type (known: {known})"
        ) from None
    if instance_type.startswith("trn2"):
        cores_per_device = lnc_cores_per_device(lnc)
    return Shape(devices, cores_per_device, rule, instance_type)


def shape_from_capacity(
    instance_type: str | None, devices: int, cores: int, lnc: int = DEFAULT_LNC
) -> Shape | None:
    """The shape of a node seen through the API: its instance-type label and its advertised
    capacity. The instance type gives the rule; capacity wins on cores per device, since it is
    what the device plugin actually found. None when the node has no Neuron capacity.

    Fewer devices than the instance type has (a plugin that counts only the device nodes it
    found) keep the type's device count and rule: a trn1.32xlarge missing a device is still a
    torus, and a 15-device ring would allow sets the torus forbids. The caller treats the
    devices beyond capacity as unavailable (`absent_devices`). More devices than the type has
    (a fake shape on a labelled node) are a ring of what capacity says."""
    known = INSTANCE_TYPES.get(instance_type or "")
    if devices <= 0 and cores <= 0:
        return None
    if devices <= 0 and known:
        devices = known[0]
    if devices <= 0:
        return None
    if cores <= 0 or cores % devices:
        base = shape_for(instance_type, lnc) if known and instance_type else None
        cores = base.cores if base and base.devices == devices else devices
    if known and devices <= known[0]:
        return Shape(known[0], cores // devices, known[2], instance_type)
    return Shape(devices, cores // devices, Rule.RING, instance_type if known else None)


def absent_devices(shape: Shape, advertised: int) -> range:
    """Devices of `shape` beyond what a node advertises (see `shape_from_capacity`): they are
    handed to no one. Empty when the node advertises no device count of its own."""
    if advertised <= 0:
        return range(0)
    return range(min(advertised, shape.devices), shape.devices)
