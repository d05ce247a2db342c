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
    Stage,
    candidates,
    choose,
    mask,
    placement_of,
    request_error,
)
from neuron_k8s.logs import get_logger
from neuron_k8s.pods import ENV_VISIBLE_CORES, ContainerRequest, visible_cores_env

from .ledger import Holding, Ledger, Served, Snapshot, cores_of, ids_of
from .metrics import Metrics
from .podresources import PodResourcesClient
from .podview import NodePod, PodView
from .state import PluginState

log = get_logger("deviceplugin.allocation")

DEVICE_PERMISSIONS = "rw"
# The kubelet calls Allocate right after GetPreferredAllocation for the same container.
FOLLOW_WINDOW = 10.0


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


@dataclass(frozen=True)
class Admitting:
    """The pod the kubelet is admitting, and the container it is allocating."""

    pod: NodePod
    container: ContainerRequest

    def served(self, resource: Resource, ids: tuple[int, ...], at: float) -> Served:
        c = self.container
        init = c.request.stage is Stage.INIT
        return Served(resource, ids, at, self.pod.uid, self.pod.key, c.container, init)


def _text(ids: Sequence[int]) -> str:
    return ",".join(str(i) for i in ids)


def next_container(
    pod: NodePod, known: Mapping[str, Mapping[Resource, tuple[int, ...]]]
) -> ContainerRequest | None:
    """The container of the pod the kubelet allocates next: it goes through them in order,
    so it is the one after the last whose IDs are known."""
    last = -1
    for i, c in enumerate(pod.requests):
        if c.request.resource in known.get(c.container, {}):
            last = i
    rest = pod.requests[last + 1 :]
    return rest[0] if rest else None


def find_admitting(
    pods: Mapping[str, NodePod],
    listed: frozenset[tuple[str, str]] | None,
    ledger: Ledger,
    resource: Resource,
    offered: frozenset[int],
) -> Admitting | None:
    """The pod being admitted: the kubelet admits one at a time and lists it (with `listed`,
    the pods of a PodResources List) before it is given IDs, and has not reported it started.
    Without a List, every pod not started is a candidate, and the one whose plan is offered,
    then the oldest bind, is the best guess."""
    found = []
    for pod in pods.values():
        if not pod.holds or pod.started or not pod.requests:
            continue
        if listed is not None and (pod.namespace, pod.name) not in listed:
            continue
        nxt = next_container(pod, ledger.known(pod.namespace, pod.name, pod.uid))
        if nxt is None or nxt.request.resource is not resource:
            continue
        planned = pod.planned(nxt.container)
        fits = planned is not None and set(planned.placement.ids) <= offered
        found.append(((not fits, pod.alloc_time, pod.created, pod.key), Admitting(pod, nxt)))
    return min(found, key=lambda f: f[0])[1] if found else None


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
        # resource -> the pod the last GetPreferredAllocation found admitted, and when
        self._answered: dict[Resource, tuple[Admitting | None, float]] = {}

    # --- input ---------------------------------------------------------------------------
    def parse_ids(self, resource: Resource, ids: Sequence[str]) -> tuple[int, ...]:
        """Device IDs of the request as integers; unknown IDs are refused by name."""
        shape = self.state.shape
        limit = shape.devices if resource.whole_devices else shape.cores
        out, bad = [], []
        for raw in ids:
            if raw.isdigit() and int(raw) < limit and str(int(raw)) == raw:
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
        self._answered[resource] = (admitting, self._clock())
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
        if admitting is not None:
            planned = admitting.pod.planned(admitting.container.container)
            if planned is not None and planned.placement.resource is resource:
                ids = planned.placement.ids
                if len(ids) == size and set(ids) <= set(avail) and set(must) <= set(ids):
                    return ids, "plan"
        shape = self.state.shape
        limit = shape.devices if resource.whole_devices else shape.cores
        not_offered = cores_of(shape, resource, set(range(limit)) - set(avail))
        required = cores_of(shape, resource, must)
        other = Resource.NEURONCORE if resource.whole_devices else Resource.NEURON
        held = self.state.ledger.held(other) & ~required
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
            self.metrics.refusals.labels(resource.value, reason).inc()
            log.warning("allocation refused", resource=resource.value, reason=message)
            raise AllocationError(grpc.StatusCode.FAILED_PRECONDITION, message)
        now = self._clock()
        admitting, at = self._answered.pop(resource, (None, 0.0))
        if now - at > FOLLOW_WINDOW or len(parsed) != 1:
            admitting = None  # not the container the last preference was asked for
        grants = []
        with self.state.lock:
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
        for h in holders:
            overlap = cores & h.cores
            parts.append(
                f"NeuronCores {_text(ids_of(shape, Resource.NEURONCORE, overlap))} are held by "
                f"{h.owner} as {h.resource.value} {_text(h.ids)}"
            )
        if twice:
            parts.append(f"{resource.value} {_text(ids_of(shape, resource, twice))} asked twice")
        return "; ".join(parts)
