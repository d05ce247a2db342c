"""Device health for the kubelet (KEP-4680, resource health in pod status): the
DRAResourceHealth service, served on the DRA socket in v1 (1.37+ kubelets) and v1alpha1 (1.34 to
1.36). The kubelet shows what it hears in the status of every container that uses a claim with
the device (`allocatedResourcesStatus`). docs/dra.md.

Each stream gets the whole list at once, again on every change (health, or a claim prepared:
its core and device sets must be in the list) and again every HEARTBEAT seconds: the kubelet
stamps each report when it arrives and shows Unknown once it is older than TIMEOUT."""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc

from neuron_k8s._proto import (
    drahealth_v1_pb2,
    drahealth_v1_pb2_grpc,
    drahealth_v1alpha1_pb2,
    drahealth_v1alpha1_pb2_grpc,
)
from neuron_k8s.logs import get_logger
from neuron_k8s.topology import Shape

from .checkpoint import Checkpoint
from .devices import device_index, device_name
from .devicesets import device_set_of, is_device_set
from .partitions import core_set_of, is_core_set

log = get_logger("dra.health")

# (registration name, messages module, service module), preferred first: the 1.37 kubelet
# picks the first of its own list that the registration names, older ones call v1alpha1.
VERSIONS: tuple[tuple[str, Any, Any], ...] = (
    ("v1.DRAResourceHealth", drahealth_v1_pb2, drahealth_v1_pb2_grpc),
    ("v1alpha1.DRAResourceHealth", drahealth_v1alpha1_pb2, drahealth_v1alpha1_pb2_grpc),
)
TIMEOUT = 30  # seconds the kubelet trusts a report (its own default, said explicitly)
HEARTBEAT = 10.0  # well inside TIMEOUT, so a quiet but live driver never reads as Unknown
# The kubelet keeps one stream per driver; a few more cover reconnects. Each one holds a
# thread of the DRA server, so they are bounded (sockets.py sizes its pool with this).
MAX_STREAMS = 2
CHECK = "the driver's health check (health file, or its device node gone)"


class Health(enum.IntEnum):
    """The proto's HealthStatus values (the same in both versions)."""

    UNKNOWN = 0
    HEALTHY = 1
    UNHEALTHY = 2


@dataclass(frozen=True)
class DeviceReport:
    device: str
    health: Health
    message: str


def devices_under(shape: Shape, name: str) -> frozenset[int] | None:
    """The node's devices a device this driver names lies on: itself, those of a core set's
    cores, those of a device set; None for a name it does not know or a device not on the node."""
    try:
        if is_core_set(name):
            under = frozenset(shape.device_of(c) for c in core_set_of(name).cores)
        elif is_device_set(name):
            under = frozenset(device_set_of(name).devices)
        else:
            under = frozenset({device_index(name)})
    except ValueError:
        return None
    return under if max(under) < shape.devices else None


def report(
    shape: Shape, names: Iterable[str], unhealthy: frozenset[int] | None
) -> list[DeviceReport]:
    """The health of every whole device and of every other name in `names` (the prepared
    claims' devices), each once. `unhealthy` None: the driver has no source of health."""
    whole = [device_name(i) for i in range(shape.devices)]
    out = []
    for name in whole + sorted(set(names) - set(whole)):
        under = devices_under(shape, name)
        if under is None:
            out.append(DeviceReport(name, Health.UNKNOWN, "not a device of this node"))
        elif unhealthy is None:
            out.append(DeviceReport(name, Health.UNKNOWN, "no health source on this node"))
        elif bad := sorted(under & unhealthy):
            if len(under) == 1 and name in whole:
                message = f"{name} failed {CHECK}"
            else:
                failed = ", ".join(device_name(i) for i in bad)
                message = f"{name} lies on {failed}, which failed {CHECK}"
            out.append(DeviceReport(name, Health.UNHEALTHY, message))
        else:
            out.append(DeviceReport(name, Health.HEALTHY, ""))
    return out


def prepared_devices(checkpoint: Checkpoint) -> Callable[[], set[str]]:
    """The device names of the claims prepared on this node, read from the checkpoint."""

    def names() -> set[str]:
        out: set[str] = set()
        for uid in checkpoint.uids():
            record = checkpoint.get(uid)
            if record is not None:
                out.update(d.device for d in record.devices)
        return out

    return names


class HealthReporter:
    """The node's device health as the kubelet's streams see it. `update` and `refresh` are
    called from the health poller and the DRA calls; `watch` runs in a gRPC thread per stream."""

    def __init__(
        self,
        shape: Shape,
        pool: str,
        names: Callable[[], Iterable[str]] = set,
        heartbeat: float = HEARTBEAT,
        timeout: int = TIMEOUT,
    ) -> None:
        self.shape = shape
        self.pool = pool
        self._names = names
        self._heartbeat = heartbeat
        self._timeout = timeout
        self._changed = threading.Condition()
        self._unhealthy: frozenset[int] | None = None  # Unknown until the first check
        self._generation = 0
        self._streams = 0
        self._closed = False

    def update(self, unhealthy: frozenset[int] | None) -> None:
        """The devices now unhealthy; None when the driver cannot tell."""
        with self._changed:
            if unhealthy != self._unhealthy:
                self._unhealthy = unhealthy
                self._bump()

    def refresh(self) -> None:
        """The prepared claims changed: their devices belong in the list."""
        with self._changed:
            self._bump()

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def reports(self) -> list[DeviceReport]:
        with self._changed:
            unhealthy = self._unhealthy
        return report(self.shape, self._names(), unhealthy)

    def _bump(self) -> None:
        self._generation += 1
        self._changed.notify_all()

    def _wake(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def watch(self, pb: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        with self._changed:
            full = self._streams >= MAX_STREAMS
            if not full:
                self._streams += 1
        if full:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "too many health streams")
        # The kubelet went away or the server stops: end now, not at the next heartbeat.
        context.add_callback(self._wake)
        log.info("health stream opened", peer=context.peer())
        try:
            seen = -1
            while (due := self._next(seen, context)) is not None:
                seen = due
                yield self.message(pb)
        finally:
            with self._changed:
                self._streams -= 1
            log.info("health stream closed", peer=context.peer())

    def _next(self, seen: int, context: grpc.ServicerContext) -> int | None:
        """Wait for a change after generation `seen` (none for the first list) or for the
        heartbeat; the generation to send, or None when the stream is over."""

        def due() -> bool:
            return self._generation != seen or self._closed or not context.is_active()

        with self._changed:
            self._changed.wait_for(due, timeout=None if seen < 0 else self._heartbeat)
            if self._closed or not context.is_active():
                return None
            return self._generation

    def message(self, pb: Any) -> Any:
        """One NodeWatchResourcesResponse of `pb`'s version: every device, stamped now."""
        now = int(time.time())
        return pb.NodeWatchResourcesResponse(
            devices=[
                pb.DeviceHealth(
                    device=pb.DeviceIdentifier(pool_name=self.pool, device_name=r.device),
                    health=int(r.health),
                    last_updated_time=now,
                    health_check_timeout_seconds=self._timeout,
                    message=r.message,
                )
                for r in self.reports()
            ]
        )

    def add_to(self, server: grpc.Server) -> None:
        for _, pb, pb_grpc in VERSIONS:
            pb_grpc.add_DRAResourceHealthServicer_to_server(_Servicer(self, pb), server)


class _Servicer:
    """The generated servicer's one method, bound to one version's messages."""

    def __init__(self, reporter: HealthReporter, pb: Any) -> None:
        self._reporter = reporter
        self._pb = pb

    def NodeWatchResources(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        return self._reporter.watch(self._pb, context)
