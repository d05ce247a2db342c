"""Discovery (fake and real, from a driver-like file tree) and the health sources."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from neuron_k8s import logs
from neuron_k8s.deviceplugin.discovery import DiscoveryError
from neuron_k8s.deviceplugin.discovery_fake import FakeDiscovery
from neuron_k8s.deviceplugin.discovery_real import RealDiscovery, read_lnc
from neuron_k8s.deviceplugin.health import HealthFile, HealthMonitor, parse_health_file
from neuron_k8s.topology import INSTANCE_TYPES, Rule


def driver_tree(root: Path, devices: int, cores: int) -> tuple[str, str]:
    dev, sysfs = root / "dev", root / "sys"
    dev.mkdir()
    for d in range(devices):
        (dev / f"neuron{d}").symlink_to("/dev/null")  # a character device, as the driver's
        for c in range(cores):
            (sysfs / "devices/virtual/neuron_device" / f"neuron{d}" / f"neuron_core{c}").mkdir(
                parents=True
            )
    return str(dev), str(sysfs)


@pytest.mark.parametrize("instance_type", sorted(INSTANCE_TYPES))
def test_fake_instance_type_has_the_table_shape(instance_type: str) -> None:
    inv = FakeDiscovery.for_instance_type(instance_type, 2).discover()
    devices, cores, rule = INSTANCE_TYPES[instance_type]
    assert inv.shape.devices == devices and inv.shape.rule is rule
    assert inv.shape.cores_per_device == (4 if instance_type.startswith("trn2") else cores)
    assert inv.fake and inv.device_nodes == {}


def test_fake_unknown_instance_type_is_an_error() -> None:
    with pytest.raises(DiscoveryError, match="not a Neuron instance type"):
        FakeDiscovery.for_instance_type("m5.large", 2)


def test_fake_counts_make_a_ring() -> None:
    shape = FakeDiscovery.for_counts(3, 4).discover().shape
    assert (shape.devices, shape.cores_per_device, shape.rule) == (3, 4, Rule.RING)


def test_real_discovery_counts_device_nodes_and_sysfs_cores(tmp_path: Path) -> None:
    dev, sysfs = driver_tree(tmp_path, 4, 4)
    inv = RealDiscovery(dev, sysfs).discover()
    assert (inv.shape.devices, inv.shape.cores_per_device, inv.source) == (4, 4, "driver")
    assert inv.device_nodes[3] == ("/dev/neuron3",)


def test_real_discovery_takes_the_rule_from_the_instance_type(tmp_path: Path) -> None:
    dev, sysfs = driver_tree(tmp_path, 16, 2)
    shape = RealDiscovery(dev, sysfs, instance_type="trn1.32xlarge").discover().shape
    assert shape.rule is Rule.ALIGNED and shape.instance_type == "trn1.32xlarge"


def test_real_discovery_reads_the_instance_type_from_dmi(tmp_path: Path) -> None:
    dev, sysfs = driver_tree(tmp_path, 16, 2)
    dmi = Path(sysfs) / "devices/virtual/dmi/id"
    dmi.mkdir(parents=True)
    (dmi / "product_name").write_text("trn1n.32xlarge\n")
    assert RealDiscovery(dev, sysfs).discover().shape.rule is Rule.ALIGNED


def test_real_discovery_without_the_driver_keeps_the_shape_but_finds_no_driver(
    tmp_path: Path,
) -> None:
    inv = RealDiscovery(str(tmp_path / "nodev"), str(tmp_path), instance_type="inf2.48xlarge")
    found = inv.discover()
    assert (found.shape.devices, found.shape.cores_per_device) == (12, 2)
    assert inv.present(found) == frozenset() and inv.driver_found() is False


def test_real_discovery_without_devices_or_instance_type_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DiscoveryError, match="no Neuron driver footprint"):
        RealDiscovery(str(tmp_path), str(tmp_path)).discover()


def test_trn2_logical_cores_follow_the_lnc_file(tmp_path: Path) -> None:
    dev, sysfs = driver_tree(tmp_path, 16, 8)
    lnc = tmp_path / "logical_nc_config"
    lnc.write_text("1\n")
    shape = RealDiscovery(dev, sysfs, read_lnc(str(lnc)), "trn2.48xlarge").discover().shape
    assert shape.cores_per_device == 8 and shape.cores == 128
    assert read_lnc(str(tmp_path / "missing")) == 2


def test_missing_device_node_makes_that_device_unhealthy(tmp_path: Path) -> None:
    dev, sysfs = driver_tree(tmp_path, 4, 2)
    discovery = RealDiscovery(dev, sysfs)
    inv = discovery.discover()
    seen: list[frozenset[int]] = []
    monitor = HealthMonitor(inv, discovery, seen.append)
    os.unlink(os.path.join(dev, "neuron2"))
    assert monitor.check() == {2}
    Path(dev, "neuron2").symlink_to("/dev/null")
    assert monitor.check() == frozenset()
    assert seen == [frozenset({2}), frozenset()]


def test_health_file_bad_lines_are_ignored_with_a_warning() -> None:
    stream = io.StringIO()
    logs.setup("info", stream)
    assert parse_health_file("1\n# comment\n\nseven\n99\n 3 \n", 4, "h") == {1, 3}
    warnings = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(w["event"], w["line"]) for w in warnings] == [
        ("health file line ignored", 4),
        ("health file line ignored", 5),
    ]


def test_health_file_missing_means_all_healthy(tmp_path: Path) -> None:
    assert HealthFile(str(tmp_path / "none"), 4).read() == frozenset()


def test_health_file_rewrite_is_seen(tmp_path: Path) -> None:
    path = tmp_path / "h"
    path.write_text("0\n")
    health = HealthFile(str(path), 4)
    assert health.read() == {0}
    path.write_text("0\n2\n")
    assert health.read() == {0, 2}
