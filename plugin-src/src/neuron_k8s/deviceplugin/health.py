"""Device health: which devices are unhealthy, from the health file (fake and real mode), the
Neuron hardware errors of kernel messages (either mode, when a source is given:
hardwareerrors.py, docs/architecture.md "Hardware errors") and, in real mode, from device nodes
that have disappeared. A poller thread reports every change at once to a callback; a device
that comes back healthy is reported healthy again (never one with a hardware error)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Protocol

from neuron_k8s.logs import get_logger

from .discovery import Discovery, Inventory

log = get_logger("deviceplugin.health")


def parse_health_file(text: str, devices: int, path: str = "") -> frozenset[int]:
    """Unhealthy device indices, one a line. Blank lines and `#` comments are skipped; a line
    that is not an index of this node is ignored with a warning, so one typo cannot take the
    whole node down."""
    out: set[int] = set()
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            index = int(line)
        except ValueError:
            index = -1
        if 0 <= index < devices:
            out.add(index)
        else:
            log.warning(
                "health file line ignored",
                path=path,
                line=number,
                text=raw.strip()[:80],
                reason=f"not a device index between 0 and {devices - 1}",
            )
    return frozenset(out)


class HealthFile:
    """Reads the health file only when it changed (identity, size, mtime), so that polling it
    every second costs one stat."""

    def __init__(self, path: str, devices: int) -> None:
        self.path = path
        self.devices = devices
        self._stamp: tuple[int, int, int] | None = None
        self._unhealthy: frozenset[int] = frozenset()

    def read(self) -> frozenset[int]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._stamp, self._unhealthy = None, frozenset()
            return self._unhealthy
        except OSError as err:
            log.warning(
                "health file unreadable, keeping last state", path=self.path, error=str(err)
            )
            return self._unhealthy
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        if stamp != self._stamp:
            try:
                with open(self.path) as f:
                    text = f.read()
            except OSError as err:
                log.warning("health file unreadable", path=self.path, error=str(err))
                return self._unhealthy
            self._stamp = stamp
            self._unhealthy = parse_health_file(text, self.devices, self.path)
        return self._unhealthy


class HardwareSource(Protocol):
    """hardwareerrors.HardwareErrors: device -> error kind, sticky for the boot."""

    def read(self) -> Mapping[int, str]: ...

    def close(self) -> None: ...


class HealthMonitor:
    """Polls every source of health every `interval` seconds in a daemon thread."""

    def __init__(
        self,
        inventory: Inventory,
        discovery: Discovery,
        on_change: Callable[[frozenset[int]], None],
        health_file: str | None = None,
        interval: float = 1.0,
        hardware: HardwareSource | None = None,
    ) -> None:
        self._inventory = inventory
        self._discovery = discovery
        self._on_change = on_change
        self._file = HealthFile(health_file, inventory.shape.devices) if health_file else None
        self._interval = interval
        self._hardware = hardware
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.unhealthy: frozenset[int] = frozenset()
        # Whether the driver's footprint was seen (None: not tracked); on_change reads it,
        # since a node without the driver advertises nothing (discovery.py).
        self.driver_found: bool | None = None
        # The devices unhealthy because of a hardware error (device -> kind), for the callers'
        # node condition; set before on_change is called.
        self.hardware_errors: Mapping[int, str] = MappingProxyType({})

    def check(self) -> frozenset[int]:
        """Read every source once; call on_change if the set, driver_found or the hardware
        errors changed."""
        unhealthy: set[int] = set(self._file.read()) if self._file else set()
        hardware = self._hardware.read() if self._hardware else self.hardware_errors
        unhealthy |= set(hardware)
        present = self._discovery.present(self._inventory)
        if present is not None:
            unhealthy |= set(range(self._inventory.shape.devices)) - present
        found = self._discovery.driver_found()
        result = frozenset(unhealthy)
        if (
            result != self.unhealthy
            or found != self.driver_found
            or hardware != self.hardware_errors
        ):
            log.info(
                "health changed",
                unhealthy=sorted(result),
                recovered=sorted(self.unhealthy - result),
                driver_found=found,
                hardware_errors=dict(hardware),
            )
            self.unhealthy, self.driver_found = result, found
            self.hardware_errors = hardware
            self._on_change(result)
        return result

    def start(self) -> None:
        self.check()
        self._thread = threading.Thread(target=self._run, name="health", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._hardware is not None:
            # After the last read: saves where reading stopped.
            if self._thread is not None:
                self._thread.join(timeout=self._interval + 5)
            self._hardware.close()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.check()
            except Exception as err:  # keep polling: health must not silently stop
                log.error("health check failed", error=str(err), exc_info=True)
