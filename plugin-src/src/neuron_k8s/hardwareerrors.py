"""The Neuron hardware errors of this boot: which devices reported one in kernel messages
(kernelsource.py follows the source, kernelmessages.py parses a line), kept for the rest of the
boot. The device plugin and the DRA driver mark these devices unhealthy through their health
monitor (deviceplugin/health.py). docs/architecture.md, "Hardware errors".

The record is sticky: a device with an error stays unhealthy even when its line leaves the
source (the ring buffer wraps, a file is rotated) and across restarts of the process, through a
state file written atomically with the boot id. On start, a state file of the same boot is
restored; one of another boot is discarded (a reboot resets the devices); an unreadable one is
ignored with a warning. Clearing after a repair: delete the state file and restart the pod (the
source is then read on from where the deleted record stopped, so the old line is not recorded
again), or reboot the node. Beside the state file, `<state file>.position` holds where reading
stopped; deleting it too makes the next start read the whole source again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from neuron_k8s.atomicfile import write_atomically
from neuron_k8s.kernelmessages import KINDS, MESSAGE_CHARS, HardwareError, parse_line
from neuron_k8s.kernelsource import KernelSource, describe
from neuron_k8s.logs import get_logger
from neuron_k8s.topology import MAX_DEVICES

log = get_logger("hardwareerrors")

DEFAULT_STATE = "/var/lib/neuron-k8s/hardware-errors.json"
BOOT_ID = "/proc/sys/kernel/random/boot_id"
POSITION_EVERY = 30.0  # seconds between writes of the read position while messages come in
VERSION = 1


@dataclass(frozen=True)
class Fault:
    kind: str  # kernelmessages.KINDS
    since: float  # first seen, seconds since the epoch
    message: str


# A device index, or None: the whole node (a line that names no device).
Key = int | None
OnNew = Callable[[Key, Fault], None]


def read_boot_id(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read(64).decode("ascii", "replace").strip()
    except OSError:
        return ""


def write_json(path: str, doc: Mapping[str, Any]) -> None:
    """`doc` as indented JSON, written whole or not at all (atomicfile.py)."""
    write_atomically(path, json.dumps(doc, indent=1, sort_keys=True).encode())


def _load(path: str) -> dict[str, Any] | None:
    """The JSON object in `path`; None when there is no file; ValueError when it is not one."""
    try:
        with open(path, "rb") as f:
            data = f.read(1 << 20)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise ValueError(err.strerror or str(err)) from err
    doc = json.loads(data)
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    return doc


def faults_from(entries: Any) -> dict[Key, Fault]:
    """The recorded faults of a state file; an entry that is not one is skipped."""
    if not isinstance(entries, list):
        raise ValueError("errors is not a list")
    out: dict[Key, Fault] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        device, kind = entry.get("device"), entry.get("kind")
        since, message = entry.get("since"), entry.get("message", "")
        if device is not None and not (
            isinstance(device, int) and not isinstance(device, bool) and 0 <= device < MAX_DEVICES
        ):
            continue
        if kind not in KINDS or not isinstance(since, int | float) or not isinstance(message, str):
            continue
        out.setdefault(device, Fault(str(kind), float(since), message[:MESSAGE_CHARS]))
    return out


def _order(item: tuple[Key, Fault]) -> int:
    return -1 if item[0] is None else item[0]


class HardwareErrors:
    """read(): device -> error kind, for the devices (below `devices`) with a hardware error
    this boot. Cheap when the source has nothing new. `on_new(device, fault)` is called once
    per device newly recorded by this process (not for one restored), device None meaning the
    whole node; it runs on the caller's thread and must not block."""

    def __init__(
        self,
        source: str,
        devices: int,
        state_file: str = DEFAULT_STATE,
        boot_id_file: str = BOOT_ID,
        on_new: OnNew | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.devices = devices
        self.state_file = state_file
        self.position_file = state_file + ".position"
        self.on_new = on_new
        self._clock = clock
        self._boot = read_boot_id(boot_id_file)
        self._faults: dict[Key, Fault] = {}
        self._dirty = False  # the state file is behind
        self._write_warned: str | None = None
        self._position_at = 0.0
        self._position_written: dict[str, int] | None = None
        self._ignored: set[int] = set()
        if not self._boot:
            log.warning(
                "boot id unreadable: a state file is kept whatever boot wrote it",
                path=boot_id_file,
            )
        position = self._restore(source)
        self._source = KernelSource(source, position)
        self._view = self._expand()
        log.info(
            "reading kernel messages for hardware errors",
            source=source,
            state_file=state_file,
            restored=self._describe(),
            resume_at=describe(position or {}),
        )

    @property
    def faults(self) -> Mapping[Key, Fault]:
        return MappingProxyType(self._faults)

    def read(self) -> Mapping[int, str]:
        found = False
        for line in self._source.poll():
            error = parse_line(line)
            if error is not None and self._record(error):
                found = True
        if found:
            self._view = self._expand()
        if self._dirty:
            self._save_state()
        elif self._clock() - self._position_at >= POSITION_EVERY:
            self._save_position()
        return self._view

    def close(self) -> None:
        """Save where reading stopped, close the source."""
        if not self._dirty:
            self._save_position()
        self._source.close()

    # --- the record ----------------------------------------------------------------------
    def _record(self, error: HardwareError) -> bool:
        key = error.device
        if key is not None and key >= self.devices:
            if key not in self._ignored:
                self._ignored.add(key)
                log.warning(
                    "hardware error for a device this node does not have: ignored",
                    device=key,
                    devices=self.devices,
                    kind=error.kind,
                    message=error.message,
                )
            return False
        if key in self._faults:
            return False
        fault = self._faults[key] = Fault(error.kind, self._clock(), error.message)
        self._dirty = True
        log.error(
            "Neuron hardware error: device unhealthy for the rest of this boot",
            device="all" if key is None else key,
            kind=error.kind,
            message=error.message,
        )
        if self.on_new is not None:
            try:
                self.on_new(key, fault)
            except Exception as err:  # the record stands whatever the callback does
                log.error("hardware error callback failed", error=str(err), exc_info=True)
        return True

    def _expand(self) -> Mapping[int, str]:
        node = self._faults.get(None)
        out: dict[int, str] = {}
        for device in range(self.devices):
            fault = self._faults.get(device, node)
            if fault is not None:
                out[device] = fault.kind
        return MappingProxyType(out)

    def _describe(self) -> dict[str, str]:
        return {"all" if k is None else str(k): f.kind for k, f in self._faults.items()}

    # --- the state file ------------------------------------------------------------------
    def _restore(self, source: str) -> dict[str, int] | None:
        """Restore this boot's record; where to resume reading, when known."""
        try:
            state = _load(self.state_file)
            faults = faults_from(state.get("errors")) if state is not None else {}
        except ValueError as err:
            log.warning(
                "hardware-error state file unreadable: starting empty, reading the whole source",
                path=self.state_file,
                error=str(err),
            )
            self._dirty = True
            return None
        if state is not None:
            boot = str(state.get("bootId", ""))
            if self._boot and boot != self._boot:
                log.info(
                    "hardware-error state of an earlier boot discarded: a reboot resets the "
                    "devices",
                    path=self.state_file,
                    boot_id=self._boot,
                    state_boot_id=boot,
                )
                self._dirty = True
                return None
            self._faults = faults
        try:
            position = _load(self.position_file)
        except ValueError:
            return None
        if position is None or position.get("source") != source:
            return None
        if self._boot and position.get("bootId") != self._boot:
            return None
        at = position.get("position")
        if not isinstance(at, dict):
            return None
        return {str(k): v for k, v in at.items() if isinstance(v, int) and v >= 0}

    def _state(self) -> dict[str, Any]:
        errors = [
            {"device": key, "kind": f.kind, "since": f.since, "message": f.message}
            for key, f in sorted(self._faults.items(), key=_order)
        ]
        return {"version": VERSION, "bootId": self._boot, "errors": errors}

    def _save_state(self) -> None:
        if self._write(self.state_file, self._state()):
            self._dirty = False
            self._save_position()

    def _save_position(self) -> None:
        self._position_at = self._clock()
        position = self._source.position()
        if position == self._position_written:
            return
        doc = {
            "version": VERSION,
            "bootId": self._boot,
            "source": self._source.path,
            "position": position,
        }
        if self._write(self.position_file, doc):
            self._position_written = position

    def _write(self, path: str, doc: Mapping[str, Any]) -> bool:
        try:
            write_json(path, doc)
        except OSError as err:
            why = err.strerror or str(err)
            if self._write_warned != why:
                self._write_warned = why
                log.warning(
                    "hardware-error state not written: kept in memory only, retrying",
                    path=path,
                    error=why,
                )
            return False
        self._write_warned = None
        return True
