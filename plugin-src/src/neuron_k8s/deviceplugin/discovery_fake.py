"""Fake discovery: a shape taken from an instance type or from explicit counts, no devices."""

from __future__ import annotations

from neuron_k8s.topology import Rule, Shape, UnknownInstanceType, shape_for

from .discovery import DiscoveryError, Inventory


class FakeDiscovery:
    def __init__(self, shape: Shape) -> None:
        self._shape = shape

    @classmethod
    def for_instance_type(cls, instance_type: str, lnc: int) -> FakeDiscovery:
        try:
            return cls(shape_for(instance_type, lnc))
        except UnknownInstanceType as err:
            raise DiscoveryError(str(err)) from None

    @classmethod
    def for_counts(cls, devices: int, cores_per_device: int) -> FakeDiscovery:
        try:
            return cls(Shape(devices, cores_per_device, Rule.RING))
        except ValueError as err:
            raise DiscoveryError(str(err)) from None

    def discover(self) -> Inventory:
        return Inventory(self._shape, {}, "fake")

    def present(self, inventory: Inventory) -> frozenset[int] | None:
        return None

    def driver_found(self) -> bool | None:
        return None
