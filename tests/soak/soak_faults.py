"""The faults the soak injects, one a minute, chosen in turn; each rotates over its targets.
The schedule is pure; the injections act through the cluster access they are given."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "cluster"))
import neurondriver

ORDER = (
    "extender-killed",
    "device-plugin-killed",
    "dra-driver-killed",
    "kubelet-restarted",
    "control-plane-paused",
    "device-unhealthy",
)


@dataclass(frozen=True)
class Fault:
    kind: str
    target: str  # a node, or "" for the extender
    device: int = 0

    def describe(self) -> str:
        where = f" {self.target}" if self.target else ""
        return f"{self.kind}{where}" + (f" device {self.device}" if self.kind == ORDER[5] else "")


@dataclass(frozen=True)
class Schedule:
    """Fault n (from 0) is of kind ORDER[n % 6]; the k-th fault of a kind takes the k-th of
    its targets in turn, so every node gets its share over a long run."""

    plugin_nodes: Sequence[str]
    dra_nodes: Sequence[str]
    control_plane: str
    every: float = 60.0
    first: float = 30.0

    def due(self, elapsed: float) -> int:
        """How many faults are due `elapsed` seconds into the run."""
        return 0 if elapsed < self.first else int((elapsed - self.first) // self.every) + 1

    def fault(self, n: int) -> Fault:
        kind = ORDER[n % len(ORDER)]
        turn = n // len(ORDER)
        workers = [*self.plugin_nodes, *self.dra_nodes]
        targets: dict[str, Sequence[str]] = {
            ORDER[0]: [""],
            ORDER[1]: self.plugin_nodes,
            ORDER[2]: self.dra_nodes,
            ORDER[3]: workers,
            ORDER[4]: [self.control_plane],
            ORDER[5]: workers,
        }
        pool = targets[kind] or [""]
        return Fault(kind, pool[turn % len(pool)], device=(turn * 5 + 3) % 12)


class Access(Protocol):
    """What injecting a fault needs of the cluster."""

    def delete_component_pods(self, component: str, node: str | None) -> int: ...

    def docker(self, *args: str) -> None: ...


def inject(
    access: Access, fault: Fault, hold: float = 20.0, sleep: Callable[[float], None] = time.sleep
) -> None:
    """Inject one fault; a pause or an unhealthy device is held `hold` seconds and always
    undone. Raises RuntimeError when there was nothing to act on."""
    kind, node = fault.kind, fault.target
    if kind == ORDER[0]:
        _killed(access.delete_component_pods("extender", None), fault)
    elif kind == ORDER[1]:
        _killed(access.delete_component_pods("device-plugin", node), fault)
    elif kind == ORDER[2]:
        _killed(access.delete_component_pods("dra", node), fault)
    elif kind == ORDER[3]:
        access.docker("exec", node, "systemctl", "restart", "kubelet")
    elif kind == ORDER[4]:
        access.docker("pause", node)
        try:
            sleep(hold)
        finally:
            access.docker("unpause", node)
    else:
        # The device node goes, as when the driver loses a device, and comes back.
        remove = neurondriver.remove_script(fault.device)
        access.docker("exec", node, "sh", "-c", remove)
        try:
            sleep(hold)
        finally:
            restore = neurondriver.restore_script(fault.device)
            access.docker("exec", node, "sh", "-c", restore)


def _killed(count: int, fault: Fault) -> None:
    if not count:
        raise RuntimeError(f"{fault.describe()}: no such pod to kill")
