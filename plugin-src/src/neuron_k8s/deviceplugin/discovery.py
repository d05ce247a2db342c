"""What Neuron hardware this node has: the interface that fake and real discovery implement."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from neuron_k8s.topology import Shape


class DiscoveryError(RuntimeError):
    """No usable Neuron shape could be found or built; the message says why."""


@dataclass(frozen=True)
class Inventory:
    """A node's Neuron devices: the shape, and the device node paths (on the host) that a
    container needs for each device. Fake inventories have no device nodes."""

    shape: Shape
    device_nodes: dict[int, tuple[str, ...]] = field(default_factory=dict)
    source: str = "fake"

    @property
    def fake(self) -> bool:
        return self.source == "fake"

    def nodes_for(self, devices: tuple[int, ...]) -> list[str]:
        return [p for d in devices for p in self.device_nodes.get(d, ())]


class Discovery(Protocol):
    def discover(self) -> Inventory:
        """Find the node's shape once, at start: it never changes while the process runs."""
        ...

    def present(self, inventory: Inventory) -> frozenset[int] | None:
        """Devices whose driver files are present now (a device that vanishes is unhealthy),
        or None when presence is not tracked (fake mode)."""
        ...

    def driver_found(self) -> bool | None:
        """Whether the driver's footprint has been seen on the node since start (once seen,
        it stays seen: a device that goes later is unhealthy, the node keeps its shape). A
        node without it advertises nothing. None when not tracked (fake mode)."""
        ...
