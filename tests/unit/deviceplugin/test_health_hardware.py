"""The health monitor with a hardware-error source (deviceplugin/health.py): its devices join
the unhealthy set, the monitor says which are unhealthy because of a hardware error, and a new
hardware error is reported even when the device was already unhealthy for another reason."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from neuron_k8s.deviceplugin.discovery_fake import FakeDiscovery
from neuron_k8s.deviceplugin.discovery_real import RealDiscovery
from neuron_k8s.deviceplugin.health import HealthMonitor


class Hardware:
    def __init__(self) -> None:
        self.errors: dict[int, str] = {}
        self.closed = False

    def read(self) -> Mapping[int, str]:
        return dict(self.errors)

    def close(self) -> None:
        self.closed = True


def test_devices_with_a_hardware_error_join_the_health_files(tmp_path: Path) -> None:
    health = tmp_path / "unhealthy"
    health.write_text("1\n")
    discovery = FakeDiscovery.for_instance_type("inf2.24xlarge", 2)
    hardware = Hardware()
    seen: list[frozenset[int]] = []
    monitor = HealthMonitor(
        discovery.discover(), discovery, seen.append, str(health), hardware=hardware
    )
    hardware.errors = {4: "DMA_ERROR"}
    assert monitor.check() == {1, 4}
    assert monitor.hardware_errors == {4: "DMA_ERROR"}
    assert seen == [frozenset({1, 4})]


def test_a_hardware_error_on_a_device_already_missing_is_still_reported(tmp_path: Path) -> None:
    dev, sysfs = tmp_path / "dev", tmp_path / "sys"
    dev.mkdir()
    for d in range(2):
        (dev / f"neuron{d}").symlink_to("/dev/null")
        (sysfs / "devices/virtual/neuron_device" / f"neuron{d}").mkdir(parents=True)
        (sysfs / "devices/virtual/neuron_device" / f"neuron{d}" / "core_count").write_text("2\n")
    discovery = RealDiscovery(str(dev), str(sysfs))
    hardware = Hardware()
    seen: list[Mapping[int, str]] = []
    monitor = HealthMonitor(
        discovery.discover(),
        discovery,
        lambda _: seen.append(monitor.hardware_errors),
        hardware=hardware,
    )
    os.unlink(dev / "neuron1")
    assert monitor.check() == {1}
    hardware.errors = {1: "HBM_UNCORRECTABLE_ERROR"}
    assert monitor.check() == {1}
    assert seen == [{}, {1: "HBM_UNCORRECTABLE_ERROR"}]


def test_stopping_the_monitor_closes_the_hardware_source() -> None:
    discovery = FakeDiscovery.for_instance_type("inf2.xlarge", 2)
    hardware = Hardware()
    monitor = HealthMonitor(discovery.discover(), discovery, lambda _: None, hardware=hardware)
    monitor.start()
    monitor.stop()
    assert hardware.closed
