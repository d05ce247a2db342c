"""Real discovery: Neuron devices from the driver's files on the node.

- Devices: the driver's device nodes `<dev-root>/neuronN`, one per device.
- Cores per device: the driver's sysfs tree, `<sysfs-root>/devices/virtual/neuron_device/
  neuronN/` (also reachable as `<sysfs-root>/class/neuron_device/neuronN`), which holds a
  `neuron_coreK/` directory per physical core (and on some drivers a `core_count` file).
- Otherwise, or to learn the topology rule, the instance type's known shape: the instance type
  comes from the node's label (read by the caller through the API) or, without an API, from
  the DMI product name the hypervisor exposes in sysfs (no metadata service needed).
- trn2's logical core size (LNC) comes from its configuration file; logical cores per device
  are physical cores divided by the LNC.
"""

from __future__ import annotations

import os
import re

from neuron_k8s.logs import get_logger
from neuron_k8s.topology import (
    DEFAULT_LNC,
    INSTANCE_TYPES,
    Rule,
    Shape,
    lnc_cores_per_device,
    shape_for,
)

from .discovery import DiscoveryError, Inventory

log = get_logger("deviceplugin.discovery")

DEVICE_NODE = re.compile(r"^neuron(\d+)$")
CORE_DIR = re.compile(r"^neuron_core(\d+)$")
SYSFS_DEVICE_DIRS = ("devices/virtual/neuron_device", "class/neuron_device")
DMI_PRODUCT_NAME = "devices/virtual/dmi/id/product_name"


def read_lnc(path: str) -> int:
    """The logical NeuronCore size from the trn2 configuration file: the first 1 or 2 in it
    (the file may hold a bare number or KEY=value). Missing or unreadable: the default."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return DEFAULT_LNC
    match = re.search(r"\b([12])\b", text)
    if not match:
        log.warning("lnc config unreadable, using default", path=path, default=DEFAULT_LNC)
        return DEFAULT_LNC
    return int(match.group(1))


def device_indices(dev_root: str) -> list[int]:
    try:
        names = os.listdir(dev_root)
    except OSError:
        return []
    return sorted(int(m.group(1)) for n in names if (m := DEVICE_NODE.match(n)))


def sysfs_core_count(sysfs_root: str, device: int) -> int | None:
    """Physical cores of one device according to the driver's sysfs tree, if it says."""
    for sub in SYSFS_DEVICE_DIRS:
        base = os.path.join(sysfs_root, sub, f"neuron{device}")
        try:
            with open(os.path.join(base, "core_count")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            pass
        try:
            cores = [n for n in os.listdir(base) if CORE_DIR.match(n)]
        except OSError:
            continue
        if cores:
            return len(cores)
    return None


def dmi_instance_type(sysfs_root: str) -> str | None:
    try:
        with open(os.path.join(sysfs_root, DMI_PRODUCT_NAME)) as f:
            name = f.read().strip()
    except OSError:
        return None
    return name if name in INSTANCE_TYPES else None


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

    def discover(self) -> Inventory:
        instance_type = self.instance_type or dmi_instance_type(self.sysfs_root)
        known = shape_for(instance_type, self.lnc) if instance_type in INSTANCE_TYPES else None
        found = device_indices(self.dev_root)
        if not found:
            if known is None:
                raise DiscoveryError(
                    f"no Neuron device nodes under {self.dev_root} and no known instance type "
                    "to fall back to (set the node's instance-type label, or use a fake mode)"
                )
            log.warning(
                "no device nodes found, using the instance type's shape",
                dev_root=self.dev_root,
                instance_type=instance_type,
            )
            shape, source = known, "instance-type"
        else:
            devices = found[-1] + 1
            if found != list(range(devices)):
                missing = sorted(set(range(devices)) - set(found))
                log.warning("device nodes missing, reported unhealthy", missing=missing)
            shape, source = self._shape(devices, known, instance_type), "driver"
        nodes: dict[int, tuple[str, ...]] = {d: (f"/dev/neuron{d}",) for d in range(shape.devices)}
        log.info(
            "discovered",
            source=source,
            instance_type=instance_type,
            devices=shape.devices,
            cores_per_device=shape.cores_per_device,
            rule=shape.rule.value,
        )
        return Inventory(shape, nodes, source)

    def _shape(self, devices: int, known: Shape | None, instance_type: str | None) -> Shape:
        trn2 = bool(instance_type and instance_type.startswith("trn2"))
        physical = sysfs_core_count(self.sysfs_root, 0)
        if trn2:
            cpd = lnc_cores_per_device(self.lnc)
        elif physical:
            cpd = physical
        elif known is not None:
            cpd = known.cores_per_device
        else:
            raise DiscoveryError(
                f"found {devices} Neuron devices but neither sysfs under {self.sysfs_root} nor "
                "a known instance type says how many cores each has"
            )
        rule = known.rule if known is not None and known.devices == devices else Rule.RING
        try:
            return Shape(devices, cpd, rule, instance_type if known is not None else None)
        except ValueError as err:
            raise DiscoveryError(f"unusable Neuron shape: {err}") from None

    def present(self, inventory: Inventory) -> frozenset[int] | None:
        # Presence only means something when the shape came from the device nodes.
        if inventory.source != "driver":
            return None
        return frozenset(device_indices(self.dev_root))
