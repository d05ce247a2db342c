"""GetPreferredAllocation and Allocate (docs/architecture.md, "The kubelet's IDs are the
truth"): find the pod the kubelet is admitting and steer it to that container's plan; serve
exactly the kubelet's IDs, refusing only unhealthy, invalid or doubly held sets. No Kubernetes
API call: the watch cache is read, and waited on for a moment at most."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import grpc

from neuron_k8s.allocator import (
    NoFit,
    Placement,
    Request,
    Resource,
    candidates,
    choose,
    mask,
    placement_of,
    request_error,
    unhealthy_core_mask,
)
from neuron_k8s.logs import get_logger
from neuron_k8s.pods import ENV_VISIBLE_CORES, ContainerAllocation, visible_cores_env

from .handoff import Admitting, Handoff, find_admitting
from .ledger import Holding, Served, Snapshot, cores_of, ids_of
from .metrics import Metrics
from .podresources import PodResourcesClient
from .podview import NodePod, PodView
from .state import PluginState

log = get_logger("deviceplugin.allocation")

DEVICE_PERMISSIONS = "rw"


class AllocationError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ContainerGrant:
    placement: Placement
    env: dict[str, str]
    device_nodes: tuple[str, ...]


def _text(ids: Sequence[int]) -> str:
    return ",".join(str(i) for i in ids)


class AllocationService:
    def __init__(
        self,
        state: PluginState,
        metrics: Metrics,
        pods: PodView | None = None,
        podresources: PodResourcesClient | None = None,
        on_served: Callable[[], None] | None = None,
        wait_for_pod: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state = state
        self.metrics = metrics
        self.pods = pods
        self.podresources = podresources
        self.on_served = on_served
        self._wait_for_pod = wait_for_pod
        self._clock = clock
        self.handoff = Handoff(clock)  # under the state lock

    # --- input ---------------------------------------------------------------------------
    def parse_ids(self, resource: Resource, ids: Sequence[str]) -> tuple[int, ...]:
        """Device IDs of the request as integers; unknown IDs are refused by name."""
        shape = self.state.shape
        limit = shape.devices if resource.whole_devices else shape.cores
        out, bad = [], []
        for raw in ids:
            if raw.isascii() and raw.isdigit() and int(raw) < limit and str(int(raw)) == raw:
                out.append(int(raw))
            else:
                bad.append(raw)
        if bad:
            raise AllocationError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"unknown {resource.value} device IDs: {', '.join(repr(b) for b in bad)} "
                f"(this node has IDs 0 to {limit - 1})",
            )
        if len(set(out)) != len(out):
            raise AllocationError(
                grpc.StatusCode.INVALID_ARGUMENT, f"duplicate {resource.value} device IDs"
            )
        return tuple(sorted(out))

    def _snapshot(self) -> Snapshot | None:
        """A fresh PodResources List (never under the state lock), also given to the ledger."""
        snapshot = self.podresources.list() if self.podresources is not None else None
        if snapshot is not None:
            with self.state.lock:
                self.state.ledger.take(snapshot)
                self.state.refresh()
        return snapshot

    def _admitting(
        self, resource: Resource, snapshot: Snapshot | None, offered: frozenset[int]
    ) -> Admitting | None:
        if self.pods is None:
            return None
        listed = snapshot.pods if snapshot is not None else None

        def find(pods: Mapping[str, NodePod]) -> Admitting | None:
            with self.state.lock:
                return find_admitting(pods, listed, self.state.ledger, resource, offered)

        def all_seen(pods: Mapping[str, NodePod]) -> bool:
            return listed is None or listed <= {(p.namespace, p.name) for p in pods.values()}

        pods = self.pods.pods()
        found = find(pods)
        if found is None and not (self.pods.synced and all_seen(pods)):
            # The kubelet knows a pod the watch has not delivered yet: wait for the watch.
            self.pods.wait(all_seen, self._wait_for_pod)
            found = find(self.pods.pods())
        return found

    # --- GetPreferredAllocation ----------------------------------------------------------
    def preferred(
        self, resource: Resource, available: Sequence[str], must_include: Sequence[str], size: int
    ) -> list[str]:
        avail = self.parse_ids(resource, available)
        must = self.parse_ids(resource, must_include)
        admitting = self._admitting(resource, self._snapshot(), frozenset(avail))
        with self.state.lock:
            ids, how = self._choose(resource, avail, must, size, admitting)
            self.handoff.asked(resource, admitting)
        self.metrics.preferred.labels(resource.value, how).inc()
        return [str(i) for i in ids]

    def _choose(
        self,
        resource: Resource,
        avail: tuple[int, ...],
        must: tuple[int, ...],
        size: int,
        admitting: Admitting | None,
    ) -> tuple[tuple[int, ...], str]:
        shape = self.state.shape
        required = cores_of(shape, resource, must)
        other = Resource.NEURONCORE if resource.whole_devices else Resource.NEURON
        held = self.state.ledger.held(other) & ~required
        planned = admitting.pod.planned(admitting.container.container) if admitting else None
        if planned is not None and self._answerable(planned, resource, avail, must, size, held):
            return planned.placement.ids, "plan"
        limit = shape.devices if resource.whole_devices else shape.cores
        not_offered = cores_of(shape, resource, set(range(limit)) - set(avail))
        claims = self._claims(admitting) & ~required
        unhealthy = mask(self.state.unhealthy)
        request = Request(resource, size)
        for blocked, how in (
            (not_offered | held | claims, "free"),
            (not_offered | held, "over-plans"),
            (not_offered & ~required, "overlapping"),
        ):
            try:
                return choose(shape, request, blocked, unhealthy, must).ids, how
            except NoFit:
                continue
        # No valid set among the offered IDs: what the kubelet must include, then the rest in
        # order. Allocate will refuse it, saying why.
        log.warning(
            "no valid set among the offered IDs",
            resource=resource.value,
            size=size,
            offered=_text(avail),
        )
        rest = [i for i in avail if i not in must]
        return tuple(sorted((*must, *rest[: max(size - len(must), 0)]))), "fallback"

    def _answerable(
        self,
        planned: ContainerAllocation,
        resource: Resource,
        avail: tuple[int, ...],
        must: tuple[int, ...],
        size: int,
        held: int,
    ) -> bool:
        """Whether the plan is the answer: all of it offered, and none of its cores held
        through the other resource or on an unhealthy device (Allocate would refuse it, while
        the allocator may find a set it serves)."""
        p = planned.placement
        ids = set(p.ids)
        if (
            p.resource is not resource
            or len(ids) != size
            or not ids <= set(avail)
            or not set(must) <= ids
        ):
            return False
        sick = unhealthy_core_mask(self.state.shape, mask(self.state.unhealthy))
        return not mask(p.cores) & (held | sick)

    def _claims(self, admitting: Admitting | None) -> int:
        """Cores of the sets recorded on the node's pods, but the one being allocated (plans
        of one node's pods are disjoint)."""
        out = 0
        for pod in self.pods.pods().values() if self.pods is not None else ():
            for a in pod.plan or () if pod.holds else ():
                out |= mask(a.placement.cores)
        own = admitting.pod.planned(admitting.container.container) if admitting else None
        return out & ~mask(own.placement.cores) if own else out

    # --- Allocate ------------------------------------------------------------------------
    def allocate(
        self, resource: Resource, requests: Sequence[Sequence[str]]
    ) -> list[ContainerGrant]:
        if not requests:
            raise AllocationError(grpc.StatusCode.INVALID_ARGUMENT, "no container requests")
        parsed = [self.parse_ids(resource, r) for r in requests]
        if not all(parsed):
            raise AllocationError(
                grpc.StatusCode.INVALID_ARGUMENT, "a container request has no device IDs"
            )
        with self.state.lock:
            refusal = self._refusal(resource, parsed)
        if refusal is not None and refusal[1] == "in_use" and self._snapshot() is not None:
            with self.state.lock:  # the last List may be old: decide on a fresh one
                refusal = self._refusal(resource, parsed)
        if refusal is not None:
            message, reason = refusal
            with self.state.lock:
                self.handoff.refused(resource)
            self.metrics.refusals.labels(resource.value, reason).inc()
            log.warning("allocation refused", resource=resource.value, reason=message)
            raise AllocationError(grpc.StatusCode.FAILED_PRECONDITION, message)
        now = self._clock()
        grants = []
        with self.state.lock:
            admitting = self.handoff.allocating(resource, [len(ids) for ids in parsed])
            for ids in parsed:
                served = admitting.served(resource, ids, now) if admitting else None
                self.state.ledger.serve(served or Served(resource, ids, now))
                placement = placement_of(
                    self.state.shape, resource, cores_of(self.state.shape, resource, ids)
                )
                grants.append(
                    ContainerGrant(
                        placement,
                        {ENV_VISIBLE_CORES: visible_cores_env(placement.cores)},
                        tuple(self.state.inventory.nodes_for(placement.devices)),
                    )
                )
                self.metrics.allocations.labels(resource.value).inc()
                log.info(
                    "allocated",
                    resource=resource.value,
                    ids=_text(ids),
                    cores=_text(placement.cores),
                    pod=admitting.pod.key if admitting else None,
                    container=admitting.container.container if admitting else None,
                )
            self.state.refresh()
        if self.on_served is not None:
            self.on_served()
        return grants

    def _refusal(self, resource: Resource, parsed: list[tuple[int, ...]]) -> tuple[str, str] | None:
        """(message, reason) for the first set that cannot be served, or None."""
        shape = self.state.shape
        claimed = 0
        for ids in parsed:
            head = f"refusing {resource.value} {_text(ids)}"
            cores = cores_of(shape, resource, ids)
            sick = sorted(set(ids_of(shape, Resource.NEURON, cores)) & self.state.unhealthy)
            if sick:
                return f"{head}: Neuron device {_text(sick)} is unhealthy", "unhealthy"
            request = Request(resource, len(ids))
            if cores not in candidates(shape, request):
                why = request_error(shape, request) or (
                    f"not a valid contiguous set on {shape.name}, which the Neuron runtime refuses"
                )
                return f"{head}: {why}", "invalid"
            holders = self.state.ledger.conflicts(resource, cores)
            if holders or cores & claimed:
                return (
                    f"{head}: {self._in_use(resource, cores, holders, cores & claimed)}",
                    "in_use",
                )
            claimed |= cores
        return None

    def _in_use(self, resource: Resource, cores: int, holders: list[Holding], twice: int) -> str:
        shape = self.state.shape
        parts = []
        by_owner: dict[tuple[str, Resource], tuple[int, set[int]]] = {}
        for h in holders:  # a List and a recent answer often name the same container
            overlap, ids = by_owner.get((h.owner, h.resource), (0, set()))
            by_owner[(h.owner, h.resource)] = (overlap | (cores & h.cores), ids | set(h.ids))
        for (owner, held_as), (overlap, ids) in by_owner.items():
            parts.append(
                f"NeuronCores {_text(ids_of(shape, Resource.NEURONCORE, overlap))} are held by "
                f"{owner} as {held_as.value} {_text(sorted(ids))}"
            )
        if twice:
            parts.append(f"{resource.value} {_text(ids_of(shape, resource, twice))} asked twice")
        return "; ".join(parts)
