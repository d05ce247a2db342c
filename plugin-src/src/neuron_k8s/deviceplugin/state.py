"""The plugin's shared state: the inventory, device health, the ledger of what the kubelet holds,
and the device lists each resource advertises. Every change bumps a generation and wakes the
ListAndWatch streams, so a change reaches the kubelet at once."""

from __future__ import annotations

import threading

from neuron_k8s.allocationmetrics import DEVICE_PLUGIN, NodeAllocations
from neuron_k8s.allocator import Resource, mask, unhealthy_core_mask
from neuron_k8s.logs import get_logger

from .api import SERVED
from .discovery import Inventory
from .ledger import Ledger
from .metrics import Metrics

log = get_logger("deviceplugin.state")

# (ID, healthy) of every ID a resource advertises
DeviceView = tuple[tuple[str, bool], ...]


class PluginState:
    def __init__(self, inventory: Inventory, metrics: Metrics, withhold_in_use: bool) -> None:
        self.inventory = inventory
        self.shape = inventory.shape
        self.metrics = metrics
        # Withholding IDs held through the other resource keeps the kubelet's counts exact
        # without the extender; with it, they must never drop below what the extender counts
        # free (docs/architecture.md, "What the kubelet is told").
        self.withhold_in_use = withhold_in_use
        # One lock for everything below. Nothing slow happens under it: no API call and no
        # PodResources call.
        self.lock = threading.RLock()
        self._changed = threading.Condition(self.lock)
        self.ledger = Ledger(self.shape)
        self.unhealthy: frozenset[int] = frozenset()
        # False on a node without the Neuron driver: nothing is advertised (discovery.py).
        self.advertised = True
        self.generation = 0
        self.stopping = False
        self._views: dict[Resource, DeviceView] = {}
        self._withheld: dict[Resource, frozenset[int]] = {}
        self.refresh()

    def _compute(self, resource: Resource) -> tuple[DeviceView, int, int]:
        shape = self.shape
        if not self.advertised:
            return (), 0, 0
        withheld = self.ledger.withheld(resource) if self.withhold_in_use else frozenset()
        if withheld != self._withheld.get(resource, frozenset()):
            self._withheld[resource] = withheld
            log.info(
                "IDs withheld from the kubelet changed",
                resource=resource.value,
                ids=",".join(str(i) for i in sorted(withheld)),
            )
        if resource.whole_devices:
            sick = {d for d in range(shape.devices) if d in self.unhealthy}
            total = shape.devices
        else:
            bad = unhealthy_core_mask(shape, mask(self.unhealthy))
            sick = {c for c in range(shape.cores) if bad >> c & 1}
            total = shape.cores
        view = tuple((str(i), i not in sick and i not in withheld) for i in range(total))
        return view, len(sick), len(withheld - sick)

    def refresh(self) -> bool:
        """Recompute what each resource advertises; wake the streams if anything changed."""
        with self.lock:
            changed = False
            for resource in SERVED:
                view, sick, withheld = self._compute(resource)
                name = resource.value
                self.metrics.devices.labels(name, "healthy").set(len(view) - sick)
                self.metrics.devices.labels(name, "unhealthy").set(sick)
                self.metrics.withheld.labels(name).set(withheld)
                if self._views.get(resource) != view:
                    self._views[resource] = view
                    changed = True
            if changed:
                self.generation += 1
                self._changed.notify_all()
            return changed

    def view(self, resource: Resource) -> tuple[int, DeviceView]:
        with self.lock:
            return self.generation, self._views[resource]

    def allocations(self, node: str) -> NodeAllocations:
        """What the node's containers hold and which devices are unhealthy, for the metrics."""
        with self.lock:
            containers = tuple(self.ledger.containers())
            return NodeAllocations(node, DEVICE_PLUGIN, self.shape, containers, self.unhealthy)

    def set_unhealthy(self, devices: frozenset[int], advertised: bool = True) -> None:
        with self.lock:
            self.unhealthy, self.advertised = devices, advertised
            self.refresh()

    def wait_change(self, generation: int, timeout: float) -> int:
        """Block until the generation moves past `generation`, the state stops, or timeout."""
        with self._changed:
            self._changed.wait_for(
                lambda: self.generation != generation or self.stopping, timeout=timeout
            )
            return self.generation

    def stop(self) -> None:
        with self._changed:
            self.stopping = True
            self._changed.notify_all()
