"""Real discovery: the node's shape once at start, and which devices the driver shows now.
The device plugin and the DRA driver both use this, over the files hostdevices.py reads
(docs/architecture.md, "Real mode").

- Shape: a known instance type (the node's label, else the DMI product name) fixes the device
  count, cores per device (trn2: by the LNC) and rule, whatever the driver shows: a device
  missing at start, even the last one, is the same node with that device unhealthy. Without a
  known instance type the driver's files are all there is: the highest device index seen
  (device node or sysfs entry) + 1, cores from sysfs, the ring rule.
- Presence: device N is healthy while its character device `<dev-root>/neuronN` exists; one
  that appears later becomes healthy on the next poll. The shape never changes mid-flight.
- No driver footprint at all (no device node and no sysfs entry): the node advertises nothing
  until the footprint appears (driver_found), and says so once.
"""

from __future__ import annotations

from neuron_k8s.hostdevices import (
    Footprint,
    core_count,
    device_nodes,
    dmi_instance_type,
    footprint,
    read_lnc,
)
from neuron_k8s.logs import get_logger
from neuron_k8s.topology import (
    DEFAULT_LNC,
    INSTANCE_TYPES,
    TRN2_PHYSICAL_CORES,
    Rule,
    Shape,
    shape_for,
)

from .discovery import DiscoveryError, Inventory

log = get_logger("deviceplugin.discovery")

__all__ = ["RealDiscovery", "read_lnc"]


def _physical_cores(instance_type: str) -> int:
    return (
        TRN2_PHYSICAL_CORES
        if instance_type.startswith("trn2")
        else INSTANCE_TYPES[instance_type][1]
    )


class RealDiscovery:
    def __init__(
        self,
        dev_root: str = "/dev",
        sysfs_root: str = "/sys",
        lnc: int = DEFAULT_LNC,
        instance_type: str | None = None,
    ) -> None:
        self.dev_root = dev_root
        self.sysfs_root = sysfs_root
        self.lnc = lnc
        self.instance_type = instance_type
        self._driver_seen = False

    def discover(self) -> Inventory:
        label = self.instance_type
        instance_type = label if label in INSTANCE_TYPES else dmi_instance_type(self.sysfs_root)
        if label and label != instance_type:
            log.warning("instance type label is not a Neuron instance type", label=label)
        found = footprint(self.dev_root, self.sysfs_root)
        if found.not_devices:
            log.warning(
                "entries under dev-root that are not character devices ignored",
                dev_root=self.dev_root,
                names=list(found.not_devices),
            )
        if instance_type is not None:
            shape = shape_for(instance_type, self.lnc)
            self._check(found, shape, instance_type)
        else:
            shape = self._shape_from_driver(found)
        self._driver_seen = found.found
        self._report(found, shape, instance_type)
        nodes: dict[int, tuple[str, ...]] = {d: (f"/dev/neuron{d}",) for d in range(shape.devices)}
        return Inventory(shape, nodes, "driver")

    def _check(self, found: Footprint, shape: Shape, instance_type: str) -> None:
        """Warn where the driver disagrees with the instance type; the type wins."""
        extra = sorted(i for i in found.nodes | found.sysfs if i >= shape.devices)
        if extra:
            log.warning(
                "devices beyond the instance type's ignored",
                instance_type=instance_type,
                devices=shape.devices,
                extra=extra,
            )
        seen = sorted(i for i in found.sysfs if i < shape.devices)
        physical = core_count(self.sysfs_root, seen[0]) if seen else None
        if physical is not None and physical != _physical_cores(instance_type):
            log.warning(
                "sysfs core count differs from the instance type's, using the instance type's",
                instance_type=instance_type,
                sysfs_cores=physical,
                expected=_physical_cores(instance_type),
            )

    def _shape_from_driver(self, found: Footprint) -> Shape:
        indices = sorted(found.nodes | found.sysfs)
        if not indices:
            raise DiscoveryError(
                f"no Neuron driver footprint (device nodes under {self.dev_root}, sysfs under "
                f"{self.sysfs_root}) and no known instance type (set the node's instance-type "
                "label, or use a fake mode)"
            )
        devices = indices[-1] + 1
        cores = next((c for i in indices if (c := core_count(self.sysfs_root, i))), None)
        if cores is None:
            raise DiscoveryError(
                f"found {devices} Neuron devices but neither sysfs under {self.sysfs_root} nor "
                "a known instance type says how many cores each has"
            )
        try:
            return Shape(devices, cores, Rule.RING)
        except ValueError as err:
            raise DiscoveryError(f"unusable Neuron shape: {err}") from None

    def _report(self, found: Footprint, shape: Shape, instance_type: str | None) -> None:
        if not found.found:
            log.error(
                "no Neuron driver found: no device nodes and no sysfs entries; advertising "
                "no devices until they appear",
                dev_root=self.dev_root,
                sysfs_root=self.sysfs_root,
                instance_type=instance_type,
            )
            return
        if found.sysfs and not found.nodes:
            log.error(
                "the driver's sysfs entries are there but no device node under dev-root: is "
                "the host's /dev mounted? every device unhealthy",
                dev_root=self.dev_root,
            )
        missing = sorted(set(range(shape.devices)) - found.nodes)
        if missing and found.nodes:
            log.warning("device nodes missing, reported unhealthy", missing=missing)
        log.info(
            "discovered",
            instance_type=instance_type,
            devices=shape.devices,
            cores_per_device=shape.cores_per_device,
            rule=shape.rule.value,
            device_nodes=len(found.nodes),
        )

    def present(self, inventory: Inventory) -> frozenset[int] | None:
        nodes, _ = device_nodes(self.dev_root)
        return frozenset(i for i in nodes if i < inventory.shape.devices)

    def driver_found(self) -> bool | None:
        if not self._driver_seen and footprint(self.dev_root, self.sysfs_root).found:
            self._driver_seen = True
            log.info("Neuron driver found, advertising the devices", dev_root=self.dev_root)
        return self._driver_seen
