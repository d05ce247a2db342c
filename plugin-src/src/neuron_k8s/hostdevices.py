"""The Neuron driver's footprint on a host: the files real discovery reads, and nothing more.
Shared by the device plugin and the DRA driver (deviceplugin/discovery_real.py decides the
shape from it); docs/architecture.md, "Real mode".

Read, and what each means:
- `<dev-root>/neuronN`: the driver's character device for device N. The only file a container
  needs, so the only proof that device N is usable. Anything else of that name (a regular
  file, or the directory a bind mount of a missing path leaves behind) does not count.
- `<sysfs-root>/devices/virtual/neuron_device/neuronN/` (or `class/neuron_device/neuronN`):
  the driver's sysfs entry for device N: that the driver is loaded even where the host's /dev
  is not visible, and the device's physical cores (`core_count`, else its `neuron_coreK/`
  directories).
- `<sysfs-root>/devices/virtual/dmi/id/product_name` (or `class/dmi/id/product_name`): the
  instance type, where the node has no instance-type label.
- trn2's `logical_nc_config`: the logical NeuronCore size.
Every value is validated; a file that is unreadable or holds garbage is skipped with a
warning, and the others still count. `connected_devices` is not read: the topology rule comes
from the instance type (topology.py).
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass

from neuron_k8s.logs import get_logger
from neuron_k8s.topology import DEFAULT_LNC, INSTANCE_TYPES, MAX_CORES_PER_DEVICE, MAX_DEVICES

log = get_logger("hostdevices")

DEVICE_NAME = re.compile(r"^neuron(0|[1-9][0-9]?)$")
CORE_DIR = re.compile(r"^neuron_core(0|[1-9][0-9]?)$")
SYSFS_DEVICE_DIRS = ("devices/virtual/neuron_device", "class/neuron_device")
DMI_PRODUCT_NAMES = ("devices/virtual/dmi/id/product_name", "class/dmi/id/product_name")
SMALL_FILE = 256  # bytes read of any one sysfs or configuration file


def _index(pattern: re.Pattern[str], name: str) -> int | None:
    match = pattern.match(name)
    if not match:
        return None
    index = int(match.group(1))
    return index if index < MAX_DEVICES else None


def _read_small(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            data = f.read(SMALL_FILE)
    except OSError:
        return None
    return data.decode("ascii", "replace").strip()


@dataclass(frozen=True)
class Footprint:
    """What the driver has left on the host right now."""

    nodes: frozenset[int]  # character devices <dev-root>/neuronN
    sysfs: frozenset[int]  # sysfs entries neuronN
    not_devices: tuple[str, ...] = ()  # neuronN names under dev-root that are no device

    @property
    def found(self) -> bool:
        return bool(self.nodes or self.sysfs)


def device_nodes(dev_root: str) -> tuple[frozenset[int], tuple[str, ...]]:
    """Indices of the character devices `neuronN` under dev_root (symbolic links followed),
    and the names of the `neuronN` entries that are not character devices."""
    try:
        names = os.listdir(dev_root)
    except OSError:
        return frozenset(), ()
    found: set[int] = set()
    bad: list[str] = []
    for name in names:
        index = _index(DEVICE_NAME, name)
        if index is None:
            continue
        try:
            mode = os.stat(os.path.join(dev_root, name)).st_mode
        except OSError:
            continue  # vanished between listdir and stat, or a dangling link
        if stat.S_ISCHR(mode):
            found.add(index)
        else:
            bad.append(name)
    return frozenset(found), tuple(sorted(bad))


def sysfs_devices(sysfs_root: str) -> frozenset[int]:
    """Indices of the driver's sysfs entries `neuronN` (directories or links to them)."""
    found: set[int] = set()
    for sub in SYSFS_DEVICE_DIRS:
        base = os.path.join(sysfs_root, sub)
        try:
            names = os.listdir(base)
        except OSError:
            continue
        for name in names:
            index = _index(DEVICE_NAME, name)
            if index is not None and os.path.isdir(os.path.join(base, name)):
                found.add(index)
    return frozenset(found)


def footprint(dev_root: str, sysfs_root: str) -> Footprint:
    nodes, bad = device_nodes(dev_root)
    return Footprint(nodes, sysfs_devices(sysfs_root), bad)


def core_count(sysfs_root: str, device: int) -> int | None:
    """Physical cores of one device according to the driver's sysfs entry: `core_count` if it
    holds a number in range, else the number of `neuron_coreK/` directories; None when
    neither says."""
    for sub in SYSFS_DEVICE_DIRS:
        base = os.path.join(sysfs_root, sub, f"neuron{device}")
        if not os.path.isdir(base):
            continue
        path = os.path.join(base, "core_count")
        text = _read_small(path)
        if text is not None:
            if text.isdigit() and 1 <= int(text) <= MAX_CORES_PER_DEVICE:
                return int(text)
            log.warning("sysfs file ignored", path=path, text=text[:40], reason="not a core count")
        try:
            cores = [n for n in os.listdir(base) if _index(CORE_DIR, n) is not None]
        except OSError:
            continue
        if 1 <= len(cores) <= MAX_CORES_PER_DEVICE:
            return len(cores)
    return None


def dmi_instance_type(sysfs_root: str) -> str | None:
    """The instance type the hypervisor names in DMI, if it is a Neuron instance type."""
    for sub in DMI_PRODUCT_NAMES:
        name = _read_small(os.path.join(sysfs_root, sub))
        if name in INSTANCE_TYPES:
            return name
    return None


def read_lnc(path: str) -> int:
    """The logical NeuronCore size from the trn2 configuration file: the first 1 or 2 in it
    (the file may hold a bare number or KEY=value). Missing or unreadable: the default."""
    text = _read_small(path)
    if text is None:
        return DEFAULT_LNC
    match = re.search(r"\b([12])\b", text)
    if not match:
        log.warning("lnc config unreadable, using default", path=path, default=DEFAULT_LNC)
        return DEFAULT_LNC
    return int(match.group(1))
