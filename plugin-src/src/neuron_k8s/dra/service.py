"""The kubelet's DRA service, served in both versions the 1.34 kubelet speaks (v1, preferred,
and v1beta1): the messages are the same, so one implementation answers both. Every claim of a
request gets an entry; a claim that cannot be prepared gets its error, the others their
devices. No Kubernetes API call happens here (the claims come from the watch cache). With a
HealthReporter, the same socket also serves the kubelet's DRAResourceHealth (health.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc

from neuron_k8s._proto import dra_v1_pb2, dra_v1_pb2_grpc, dra_v1beta1_pb2, dra_v1beta1_pb2_grpc
from neuron_k8s.logs import get_logger

from .claims import ClaimError
from .health import VERSIONS as HEALTH_VERSIONS
from .health import HealthReporter
from .metrics import Metrics
from .prepare import Preparer

log = get_logger("dra.service")

# (registration name, messages module, service module), preferred first.
VERSIONS: tuple[tuple[str, Any, Any], ...] = (
    ("v1.DRAPlugin", dra_v1_pb2, dra_v1_pb2_grpc),
    ("v1beta1.DRAPlugin", dra_v1beta1_pb2, dra_v1beta1_pb2_grpc),
)


class DraService:
    """Version-neutral: `pb` is the messages module of the version being answered."""

    def __init__(
        self,
        preparer: Preparer,
        metrics: Metrics,
        health: HealthReporter | None = None,
        on_prepare: Callable[[], None] | None = None,
    ) -> None:
        self._preparer = preparer
        self._metrics = metrics
        self._health = health
        self._on_prepare = on_prepare  # must not block: called inside the kubelet's call

    @property
    def services(self) -> list[str]:
        """What the registration lists as supported versions: the kubelet takes the DRAPlugin
        version it prefers, and streams health only from a driver that names the service."""
        names = [name for name, _, _ in VERSIONS]
        if self._health is not None:
            names += [name for name, _, _ in HEALTH_VERSIONS]
        return names

    def prepare(self, pb: Any, request: Any) -> Any:
        out = pb.NodePrepareResourcesResponse()
        for claim in request.claims:
            start = time.monotonic()
            entry = out.claims[claim.uid]
            try:
                record = self._preparer.prepare(claim.namespace, claim.name, claim.uid)
            except (ClaimError, OSError, LookupError, TypeError, AttributeError) as err:
                # A malformed claim fails its own entry, never the other claims of the call.
                entry.error = f"{claim.namespace}/{claim.name}: {err!s}"
                self._metrics.prepares.labels("error").inc()
                log.warning(
                    "prepare failed",
                    claim=f"{claim.namespace}/{claim.name}",
                    uid=claim.uid,
                    error=str(err),
                )
                continue
            for d in record.devices:
                entry.devices.append(
                    pb.Device(
                        request_names=[d.request],
                        pool_name=record.pool,
                        device_name=d.device,
                        cdi_device_ids=list(d.cdi_ids),
                    )
                )
            self._metrics.prepares.labels("ok").inc()
            self._metrics.prepare_seconds.observe(time.monotonic() - start)
        if self._health is not None and out.claims:
            # Their core and device sets now belong in the kubelet's health list.
            self._health.refresh()
        if self._on_prepare is not None:
            self._on_prepare()
        return out

    def unprepare(self, pb: Any, request: Any) -> Any:
        out = pb.NodeUnprepareResourcesResponse()
        for claim in request.claims:
            entry = out.claims[claim.uid]
            try:
                self._preparer.unprepare(claim.uid)
            except OSError as err:
                entry.error = f"{claim.namespace}/{claim.name}: {err}"
                log.warning("unprepare failed", uid=claim.uid, error=str(err))
            else:
                self._metrics.unprepares.inc()
        return out

    def add_to(self, server: grpc.Server) -> None:
        for _, pb, pb_grpc in VERSIONS:
            pb_grpc.add_DRAPluginServicer_to_server(_Servicer(self, pb), server)
        if self._health is not None:
            self._health.add_to(server)


class _Servicer:
    """The generated servicer's two methods, bound to one version's messages."""

    def __init__(self, service: DraService, pb: Any) -> None:
        self._service = service
        self._pb = pb

    def NodePrepareResources(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._service.prepare(self._pb, request)

    def NodeUnprepareResources(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._service.unprepare(self._pb, request)
