"""Real discovery over planted driver footprints (hostdevices.py, discovery_real.py): every
instance type, a device node missing at start or arriving later, no driver at all, and garbage
in the driver's files. Device nodes are symbolic links to /dev/null: character devices that a
test can make without privileges."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from neuron_k8s import logs
from neuron_k8s.deviceplugin.discovery import Inventory
from neuron_k8s.deviceplugin.discovery_real import RealDiscovery, read_lnc
from neuron_k8s.deviceplugin.health import HealthMonitor
from neuron_k8s.topology import INSTANCE_TYPES, TRN2_PHYSICAL_CORES, Rule, shape_for

SYSFS_DEVICES = "devices/virtual/neuron_device"


class Node:
    """A planted host: <root>/dev for device nodes, <root>/sys for sysfs."""

    def __init__(self, root: Path) -> None:
        self.dev, self.sys = root / "dev", root / "sys"
        self.dev.mkdir()
        self.sys.mkdir()

    def add_node(self, device: int) -> None:
        (self.dev / f"neuron{device}").symlink_to("/dev/null")

    def remove_node(self, device: int) -> None:
        (self.dev / f"neuron{device}").unlink()

    def add_sysfs(self, device: int, cores: int, core_count: str | None = None) -> Path:
        base = self.sys / SYSFS_DEVICES / f"neuron{device}"
        for c in range(cores):
            (base / f"neuron_core{c}").mkdir(parents=True)
        base.mkdir(parents=True, exist_ok=True)
        (base / "core_count").write_text(f"{cores}\n" if core_count is None else core_count)
        return base

    def plant(self, devices: int, cores: int, missing: tuple[int, ...] = ()) -> None:
        """The driver's files for `devices` devices; device nodes of `missing` absent."""
        for d in range(devices):
            self.add_sysfs(d, cores)
            if d not in missing:
                self.add_node(d)

    def discovery(self, instance_type: str | None = None, lnc: int = 2) -> RealDiscovery:
        return RealDiscovery(str(self.dev), str(self.sys), lnc, instance_type)


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return Node(tmp_path)


@pytest.fixture
def log_lines() -> io.StringIO:
    stream = io.StringIO()
    logs.setup("info", stream)
    return stream


def events(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def physical(instance_type: str) -> int:
    return (
        TRN2_PHYSICAL_CORES
        if instance_type.startswith("trn2")
        else INSTANCE_TYPES[instance_type][1]
    )


def monitor(discovery: RealDiscovery, inventory: Inventory) -> HealthMonitor:
    return HealthMonitor(inventory, discovery, lambda _: None)


SHAPES = [(t, 2) for t in sorted(INSTANCE_TYPES)] + [
    (t, 1) for t in sorted(INSTANCE_TYPES) if t.startswith("trn2")
]


def positions(devices: int) -> list[int]:
    """First, middle and last device (fewer when the node has fewer devices)."""
    return sorted({0, devices // 2, devices - 1})


# --- shape ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("instance_type", "lnc"), SHAPES)
def test_every_instance_type_gets_its_table_shape_with_every_device_present(
    node: Node, instance_type: str, lnc: int
) -> None:
    want = shape_for(instance_type, lnc)
    node.plant(want.devices, physical(instance_type))
    discovery = node.discovery(instance_type, lnc)
    inventory = discovery.discover()
    assert inventory.shape == want
    assert inventory.device_nodes == {d: (f"/dev/neuron{d}",) for d in range(want.devices)}
    assert discovery.present(inventory) == frozenset(range(want.devices))
    assert discovery.driver_found() is True


@pytest.mark.parametrize(
    ("instance_type", "lnc", "missing"),
    [(t, lnc, m) for t, lnc in SHAPES for m in positions(INSTANCE_TYPES[t][0])],
)
def test_a_device_node_missing_at_start_keeps_the_shape_and_only_that_device_is_unhealthy(
    node: Node, instance_type: str, lnc: int, missing: int
) -> None:
    want = shape_for(instance_type, lnc)
    node.plant(want.devices, physical(instance_type), missing=(missing,))
    discovery = node.discovery(instance_type, lnc)
    inventory = discovery.discover()
    assert inventory.shape == want
    assert monitor(discovery, inventory).check() == {missing}


def test_trn1_32xlarge_without_its_last_device_node_stays_16_aligned_devices(node: Node) -> None:
    node.plant(16, 2, missing=(15,))
    discovery = node.discovery("trn1.32xlarge")
    inventory = discovery.discover()
    assert (inventory.shape.devices, inventory.shape.rule) == (16, Rule.ALIGNED)
    assert monitor(discovery, inventory).check() == {15}


def test_the_shape_comes_from_the_dmi_product_name_without_a_label(node: Node) -> None:
    node.plant(16, 2, missing=(15,))
    dmi = node.sys / "devices/virtual/dmi/id"
    dmi.mkdir(parents=True)
    (dmi / "product_name").write_text("trn1n.32xlarge\n")
    assert node.discovery().discover().shape == shape_for("trn1n.32xlarge")


def test_without_an_instance_type_the_shape_is_the_highest_device_seen_and_a_ring(
    node: Node,
) -> None:
    node.plant(6, 2, missing=(5,))  # the sysfs entry of device 5 still says it exists
    discovery = node.discovery()
    inventory = discovery.discover()
    assert (inventory.shape.devices, inventory.shape.cores_per_device) == (6, 2)
    assert inventory.shape.rule is Rule.RING
    assert monitor(discovery, inventory).check() == {5}


def test_device_nodes_beyond_the_instance_types_are_ignored(node: Node) -> None:
    node.plant(2, 2)
    discovery = node.discovery("trn1.2xlarge")
    inventory = discovery.discover()
    assert inventory.shape.devices == 1
    assert discovery.present(inventory) == {0}


# --- no driver -------------------------------------------------------------------------------
def test_a_neuron_node_without_the_driver_finds_no_driver_and_says_so_once(
    node: Node, log_lines: io.StringIO
) -> None:
    discovery = node.discovery("inf2.48xlarge")
    inventory = discovery.discover()
    health = monitor(discovery, inventory)
    health.check()
    health.check()
    assert health.driver_found is False
    errors = [e for e in events(log_lines) if e["level"] == "error"]
    assert [e["event"] for e in errors] == [
        "no Neuron driver found: no device nodes and no sysfs entries; advertising no devices "
        "until they appear"
    ]


def test_a_driver_that_loads_after_start_is_found_and_its_devices_become_healthy(
    node: Node,
) -> None:
    discovery = node.discovery("inf2.24xlarge")
    inventory = discovery.discover()
    health = monitor(discovery, inventory)
    assert health.check() == frozenset(range(6)) and health.driver_found is False
    node.plant(6, 2)
    assert health.check() == frozenset() and health.driver_found is True
    assert inventory.shape == shape_for("inf2.24xlarge")


def test_once_found_the_driver_stays_found_when_every_device_node_goes(node: Node) -> None:
    node.plant(1, 2)
    discovery = node.discovery("inf2.xlarge")
    health = monitor(discovery, discovery.discover())
    node.remove_node(0)
    assert health.check() == {0} and health.driver_found is True


def test_sysfs_entries_without_device_nodes_are_a_driver_whose_devices_are_unusable(
    node: Node, log_lines: io.StringIO
) -> None:
    node.plant(12, 2, missing=tuple(range(12)))
    discovery = node.discovery("inf2.48xlarge")
    health = monitor(discovery, discovery.discover())
    assert health.check() == frozenset(range(12)) and health.driver_found is True
    assert any("is the host's /dev mounted?" in str(e["event"]) for e in events(log_lines))


# --- devices arriving after start ------------------------------------------------------------
def test_a_device_node_created_after_start_becomes_healthy_without_changing_the_shape(
    node: Node,
) -> None:
    node.plant(16, 2, missing=(0, 15))
    discovery = node.discovery("trn1.32xlarge")
    inventory = discovery.discover()
    seen: list[frozenset[int]] = []
    health = HealthMonitor(inventory, discovery, seen.append)
    health.check()
    node.add_node(15)
    health.check()
    node.add_node(0)
    health.check()
    assert seen == [frozenset({0, 15}), frozenset({0}), frozenset()]
    assert inventory.shape == shape_for("trn1.32xlarge")


# --- garbage in the driver's files -----------------------------------------------------------
def test_entries_named_like_devices_that_are_not_character_devices_do_not_count(
    node: Node, log_lines: io.StringIO
) -> None:
    node.plant(4, 4, missing=(1, 2))
    (node.dev / "neuron1").write_text("not a device")
    (node.dev / "neuron2").mkdir()  # what a bind mount of a missing path leaves
    (node.dev / "neuron3x").symlink_to("/dev/null")
    (node.dev / "neuron01").symlink_to("/dev/null")
    (node.dev / "neuron9").symlink_to(node.dev / "gone")  # dangling
    discovery = node.discovery("inf1.6xlarge")
    inventory = discovery.discover()
    assert discovery.present(inventory) == {0, 3}
    warned = [e for e in events(log_lines) if e["event"].startswith("entries under dev-root")]
    assert [e["names"] for e in warned] == [["neuron1", "neuron2"]]


def test_a_garbage_core_count_falls_back_to_the_core_directories(node: Node) -> None:
    for d in range(3):
        node.add_node(d)
    node.add_sysfs(0, 4, core_count="banana\n")
    node.add_sysfs(1, 4, core_count="\xff\x00")
    node.add_sysfs(2, 4, core_count="99")
    assert node.discovery().discover().shape.cores_per_device == 4


def test_one_unreadable_device_entry_does_not_hide_the_next_ones_core_count(node: Node) -> None:
    node.add_node(0)
    node.add_node(1)
    (node.sys / SYSFS_DEVICES).mkdir(parents=True)
    (node.sys / SYSFS_DEVICES / "neuron0").write_text("a file, not an entry")
    node.add_sysfs(1, 2)
    shape = node.discovery().discover().shape
    assert (shape.devices, shape.cores_per_device) == (2, 2)


def test_a_core_count_that_disagrees_with_the_instance_type_keeps_the_types_shape(
    node: Node, log_lines: io.StringIO
) -> None:
    node.add_node(0)
    node.add_sysfs(0, 2, core_count="7\n")
    assert node.discovery("inf2.xlarge").discover().shape == shape_for("inf2.xlarge")
    assert any(e["event"].startswith("sysfs core count differs") for e in events(log_lines))


def test_a_label_that_is_no_neuron_type_falls_back_to_dmi_and_garbage_dmi_to_the_driver(
    node: Node,
) -> None:
    node.plant(2, 2)
    dmi = node.sys / "class/dmi/id"
    dmi.mkdir(parents=True)
    (dmi / "product_name").write_text("inf2.24xlarge")
    assert node.discovery("m5.large").discover().shape == shape_for("inf2.24xlarge")
    (dmi / "product_name").write_bytes(b"\x00\xffgarbage" * 100)
    assert node.discovery("m5.large").discover().shape.devices == 2


@pytest.mark.parametrize(
    ("text", "lnc"), [("1\n", 1), ("NEURON_LOGICAL_NC_CONFIG=1", 1), ("12", 2), ("\xff", 2)]
)
def test_the_lnc_file_is_validated(tmp_path: Path, text: str, lnc: int) -> None:
    path = tmp_path / "logical_nc_config"
    path.write_text(text)
    assert read_lnc(str(path)) == lnc


def test_a_device_node_that_vanishes_between_listing_and_stat_is_simply_absent(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    node.plant(2, 2)
    discovery = node.discovery("inf2.xlarge")
    inventory = discovery.discover()
    real_stat = os.stat

    def racing_stat(path: str | os.PathLike[str], *a: object, **k: object) -> os.stat_result:
        if str(path).endswith("neuron0"):
            raise FileNotFoundError(path)
        return real_stat(path)

    monkeypatch.setattr(os, "stat", racing_stat)
    assert discovery.present(inventory) == frozenset()
