"""How the plugin answers GetPreferredAllocation and Allocate, on top of the pure allocator.

GetPreferredAllocation steers the kubelet to the set the extender planned for the oldest pod
still waiting on this node (listing the node's pods again when the watch shows none of that
size: it may lag behind the binding), so that the kubelet's IDs are the real ones and its own
accounting stays true. Otherwise it offers the allocator's best valid set that avoids
everything in use or planned.

Allocate has two paths:
- extender: the extender chose the IDs at bind time and wrote them on the pod. The plugin
  takes the waiting pod whose next container of this resource was planned exactly the
  kubelet's IDs (the kubelet followed GetPreferredAllocation), else, when the kubelet chose
  its IDs itself, the oldest one (NEURON_ALLOC_TIME) asking for as many IDs, and hands out
  exactly the extender's IDs. Once every container of the pod has them, it marks the pod
  NEURON_ALLOCATED=true. IDs the kubelet took from GetPreferredAllocation are never swapped for
  others: its numbering would then differ from the real one.
- kubelet: no such pod (no extender, or no API), or its plan overlaps a container's cores and
  cannot be served any more: the kubelet's IDs, which GetPreferredAllocation steered to a valid
  contiguous set.
Either way the set is checked against the ledger, and refused if any core is held by a
container (plans of pods still waiting are reservations, not holders).

The pod is still a guess: the kubelet admits pods created in the same second in any order, so
pod B's container may receive the set planned for pod A and the other way round. Every
container still has a set of its own, but the annotations, from which the extender derives
what is in use, would lie. reconcile() (after each PodResources poll, which comes about a
second after every Allocate) compares what each container really got (the ledger's truth) with
the pod's annotation and merge-patches ALLOCATION and AWS_NEURON_IDS of every pod whose
annotation differs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import grpc

from neuron_k8s.allocator import (
    NoFit,
    Placement,
    Request,
    Resource,
    choose,
    mask,
    placement_of,
)
from neuron_k8s.logs import get_logger
from neuron_k8s.pods import (
    NEURON_ALLOCATED,
    ContainerAllocation,
    placement_annotations,
    visible_cores_env,
)

from .ledger import Given, Grant, PodRecord, Use, cores_of, ids_of
from .metrics import Metrics
from .podresources import PodResourcesClient
from .podview import PodSource
from .state import PluginState

log = get_logger("deviceplugin.allocation")

ENV_VISIBLE_CORES = "NEURON_RT_VISIBLE_CORES"
# The kubelet calls Allocate right after GetPreferredAllocation for the same container.
FOLLOW_WINDOW = 10.0
DEVICE_PERMISSIONS = "rw"


class AllocationError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ContainerGrant:
    placement: Placement
    source: str
    env: dict[str, str]
    device_nodes: tuple[str, ...]


def _ids_text(ids: Sequence[int]) -> str:
    return ",".join(str(i) for i in ids)


class AllocationService:
    def __init__(
        self,
        state: PluginState,
        metrics: Metrics,
        pods: PodSource | None = None,
        podresources: PodResourcesClient | None = None,
        on_granted: Callable[[], None] | None = None,
    ) -> None:
        self.state = state
        self.metrics = metrics
        self.pods = pods
        self.podresources = podresources
        # Called after every successful Allocate (the plugin polls PodResources soon after).
        self.on_granted = on_granted
        # pod uid -> the last correction patched onto it (not patched twice while the watch
        # has not yet delivered it)
        self._patched: dict[str, dict[str, str]] = {}
        # resource -> the last GetPreferredAllocation answer and when: the kubelet calls it
        # right before Allocate for the same container.
        self._answered: dict[Resource, tuple[tuple[int, ...], float]] = {}

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

    # --- extender annotations ------------------------------------------------------------
    def _waiting(
        self, resource: Resource, taken: dict[str, set[str]] | None = None
    ) -> list[tuple[PodRecord, ContainerAllocation]]:
        """Each pod not yet fully handed out, oldest NEURON_ALLOC_TIME first, with its next
        container of this resource (`taken`: containers matched earlier in the same call).
        Sets are the ledger's effective ones: a pod whose planned set went to another pod is
        served the set that pod was planned. A set that overlaps a container's cores cannot be
        served: such a pod gets what the kubelet chose, and reconcile() rewrites its plan."""
        ledger = self.state.ledger
        done, reopened = ledger.progress()
        held = ledger.held_cores()
        records = sorted(
            (
                r
                for r in ledger.effective_pods().values()
                if r.holds and (not r.allocated or r.uid in reopened)
            ),
            key=lambda r: (r.alloc_time, r.created, r.key),
        )
        out = []
        for record in records:
            finished = done.get(record.uid, set()) | (taken or {}).get(record.uid, set())
            pending = [
                c
                for c in record.containers
                if c.container not in finished and c.placement.resource is resource
            ]
            if pending and not mask(pending[0].placement.cores) & held:
                out.append((record, pending[0]))
        return out

    def _next(
        self,
        resource: Resource,
        ids: tuple[int, ...],
        taken: dict[str, set[str]] | None = None,
        followed: bool = False,
    ) -> tuple[PodRecord, ContainerAllocation] | None:
        """The pod and container the kubelet is most likely admitting with `ids`: the one whose
        set is exactly those IDs, else (unless the kubelet `followed` GetPreferredAllocation,
        whose answer no waiting pod was planned by now) the oldest one asking for as many IDs."""
        waiting = self._waiting(resource, taken)
        for record, container in waiting:
            if container.placement.ids == ids:
                return record, container
        if followed:
            # Swapping IDs the kubelet got from us would make its numbering differ from the
            # real one; the kubelet's set is valid, and reconcile() rewrites the annotation.
            return None
        for record, container in waiting:
            if len(container.placement.ids) == len(ids):
                return record, container
        return None

    def _followed(self, resource: Resource, ids: tuple[int, ...]) -> bool:
        answered = self._answered.get(resource)
        return (
            answered is not None
            and answered[0] == ids
            and time.monotonic() - answered[1] < FOLLOW_WINDOW
        )

    def _steer(
        self, resource: Resource, avail: tuple[int, ...], must: tuple[int, ...], size: int
    ) -> tuple[int, ...] | None:
        """The set of the oldest waiting container of this size that the kubelet can give."""
        offered = set(avail)
        for _, container in self._waiting(resource):
            ids = container.placement.ids
            if len(ids) == size and set(ids) <= offered and set(must) <= set(ids):
                return ids
        return None

    # --- GetPreferredAllocation ----------------------------------------------------------
    def preferred(
        self, resource: Resource, available: Sequence[str], must_include: Sequence[str], size: int
    ) -> list[str]:
        avail = self.parse_ids(resource, available)
        must = self.parse_ids(resource, must_include)
        shape = self.state.shape
        with self.state.lock:
            # What the kubelet offers is not assigned in its numbering: older records say so.
            self.state.ledger.forget_reused(resource, avail)
            steered = self._steer(resource, avail, must, size) if self.pods is not None else None
        # The watch may not have delivered the pod being admitted yet: ask the API, so that the
        # kubelet is steered to its set and Allocate need not swap IDs.
        if steered is None and self.pods is not None and self.pods.relist():
            with self.state.lock:
                steered = self._steer(resource, avail, must, size)
        if steered is not None:
            return self._answer(resource, steered, "extender")
        with self.state.lock:
            ledger = self.state.ledger
            everything = range(shape.devices if resource.whole_devices else shape.cores)
            not_offered = cores_of(shape, resource, set(everything) - set(avail))
            required = cores_of(shape, resource, must)
            in_use = ledger.used_cores() & ~required
            unhealthy = mask(self.state.unhealthy)
            request = Request(resource, size)
            how = "topology"
            try:
                chosen = choose(shape, request, not_offered | in_use, unhealthy, must).ids
            except NoFit:
                try:
                    # Every valid set overlaps something in use: let Allocate say which.
                    chosen = choose(shape, request, not_offered & ~required, unhealthy, must).ids
                    how = "overlapping"
                except NoFit as err:
                    # No valid set among what the kubelet offers: keep its must-include IDs
                    # and fill up in order; Allocate will still check the result.
                    rest = [i for i in avail if i not in must]
                    chosen = tuple(sorted((*must, *rest[: max(size - len(must), 0)])))
                    how = "fallback"
                    log.warning(
                        "no valid set among the offered IDs",
                        resource=resource.value,
                        size=size,
                        offered=_ids_text(avail),
                        reason=str(err),
                    )
        return self._answer(resource, chosen, how)

    def _answer(self, resource: Resource, ids: Sequence[int], how: str) -> list[str]:
        """Count and remember a GetPreferredAllocation answer (see _followed)."""
        self.metrics.preferred.labels(resource.value, how).inc()
        self._answered[resource] = (tuple(sorted(ids)), time.monotonic())
        return [str(i) for i in ids]

    # --- Allocate ------------------------------------------------------------------------
    def allocate(
        self, resource: Resource, requests: Sequence[Sequence[str]]
    ) -> list[ContainerGrant]:
        if not requests:
            raise AllocationError(grpc.StatusCode.INVALID_ARGUMENT, "no container requests")
        parsed = [self.parse_ids(resource, r) for r in requests]
        for ids in parsed:
            if not ids:
                raise AllocationError(
                    grpc.StatusCode.INVALID_ARGUMENT, "a container request has no device IDs"
                )
        if self.pods is not None:
            with self.state.lock:
                missing = any(self._next(resource, ids) is None for ids in parsed)
            if missing:
                # The watch may not have delivered the pod being admitted yet: ask the API.
                self.pods.relist()
        with self.state.lock:
            grants, finished = self._allocate_locked(resource, parsed)
        if self.on_granted is not None:
            self.on_granted()
        for record in finished:
            if self.pods is not None and self.pods.mark_allocated(record):
                with self.state.lock:
                    current = self.state.ledger.pods.get(record.uid)
                    if current is not None:
                        self.state.ledger.put_pod(_replace_allocated(current))
        return grants

    def _allocate_locked(
        self, resource: Resource, parsed: list[tuple[int, ...]]
    ) -> tuple[list[ContainerGrant], list[PodRecord]]:
        shape = self.state.shape
        ledger = self.state.ledger
        planned: list[tuple[Placement, str, PodRecord | None, str | None, tuple[int, ...]]] = []
        claimed = 0
        taken: dict[str, set[str]] = {}
        for ids in parsed:
            found = (
                self._next(resource, ids, taken, self._followed(resource, ids))
                if self.pods
                else None
            )
            if found:
                record, container = found
                placement, source = container.placement, "extender"
                pod, cname = record.key, container.container
                taken.setdefault(record.uid, set()).add(cname)
                if placement.ids != ids:
                    log.info(
                        "handing out the extender's IDs instead of the kubelet's",
                        pod=pod,
                        container=cname,
                        resource=resource.value,
                        extender_ids=_ids_text(placement.ids),
                        kubelet_ids=_ids_text(ids),
                    )
            else:
                record, pod, cname, source = None, None, None, "kubelet"
                placement = placement_of(shape, resource, cores_of(shape, resource, ids))
                ledger.forget_reused(resource, ids)
            cores = mask(placement.cores)
            conflicts = ledger.conflicts(cores)
            if conflicts and self.podresources is not None:
                # The cached kubelet view may be a few seconds old: look again before refusing.
                view = self.podresources.list()
                if view is not None:
                    ledger.set_kubelet(view)
                if source == "kubelet":
                    ledger.forget_reused(resource, ids)
                conflicts = ledger.conflicts(cores)
            if conflicts or cores & claimed:
                self.metrics.conflicts.labels(resource.value).inc()
                message = self._conflict_message(resource, placement, conflicts, cores & claimed)
                log.warning(
                    "allocation refused",
                    resource=resource.value,
                    reason=message,
                    kubelet_ids=_ids_text(ids),
                    ledger=ledger.describe(),
                )
                raise AllocationError(grpc.StatusCode.FAILED_PRECONDITION, message)
            if not _contiguous(placement.cores):
                log.warning(
                    "non-contiguous cores handed out; the Neuron runtime may refuse them",
                    resource=resource.value,
                    cores=_ids_text(placement.cores),
                )
            claimed |= cores
            planned.append((placement, source, record, cname, ids))

        now = time.monotonic()
        grants, touched = [], {}
        for placement, source, record, cname, kubelet_ids in planned:
            # Before the grant: remembering drops older records of the same kubelet IDs.
            ledger.remember(
                Given(
                    resource,
                    kubelet_ids,
                    placement,
                    record.uid if record else None,
                    record.key if record else None,
                    cname,
                )
            )
            ledger.grant(
                Grant(
                    resource,
                    placement.ids,
                    mask(placement.cores),
                    now,
                    record.key if record else None,
                    cname,
                    kubelet_ids,
                )
            )
            if record is not None:
                touched[record.uid] = record
            self.metrics.allocations.labels(resource.value, source).inc()
            grants.append(
                ContainerGrant(
                    placement,
                    source,
                    {ENV_VISIBLE_CORES: visible_cores_env(placement.cores)},
                    tuple(self.state.inventory.nodes_for(placement.devices)),
                )
            )
            log.info(
                "allocated",
                resource=resource.value,
                source=source,
                pod=record.key if record else None,
                container=cname,
                ids=_ids_text(placement.ids),
                cores=_ids_text(placement.cores),
                kubelet_ids=_ids_text(kubelet_ids),
            )
        done, _ = ledger.progress()
        finished = [
            r
            for r in touched.values()
            if {c.container for c in r.containers} <= done.get(r.uid, set())
        ]
        self.state.refresh()
        return grants, finished

    # --- reconciling the annotations with the truth --------------------------------------
    def reconcile(self) -> int:
        """Merge-patch ALLOCATION and AWS_NEURON_IDS of every pod on this node whose
        annotation differs from what its containers really got (or, for a pod still waiting,
        from the set it inherits from such a swap), and NEURON_ALLOCATED=false on a pod that
        was marked but whose set went to another pod. Returns how many pods were patched."""
        if self.pods is None:
            return 0
        with self.state.lock:
            ledger = self.state.ledger
            effective = ledger.effective_pods()
            truth = ledger.truth()
            _, reopened = ledger.progress()
            self._patched = {u: p for u, p in self._patched.items() if u in ledger.pods}
            todo: list[tuple[PodRecord, PodRecord, dict[str, str], str]] = []
            for uid, record in ledger.pods.items():
                now = effective[uid]
                if not record.holds:
                    continue
                notes: dict[str, str] = {}
                if now.containers != record.containers:
                    notes.update(placement_annotations(self.pods.node, now.containers))
                admitted = all(
                    c.placement.resource
                    in truth.get((record.namespace, record.name, c.container), {})
                    for c in record.containers
                )
                if uid in reopened and record.allocated:
                    notes[NEURON_ALLOCATED] = "false"
                elif notes and admitted and not record.allocated:
                    # Its containers were served under another pod's name: never marked.
                    notes[NEURON_ALLOCATED] = "true"
                if not notes or self._patched.get(uid) == notes:
                    continue
                todo.append((record, now, notes, "admitted" if admitted else "pending"))
        patched = 0
        for record, now, notes, kind in todo:
            if not self.pods.patch_annotations(record, notes):
                continue
            patched += 1
            self._patched[record.uid] = notes
            if now.containers != record.containers:
                self.metrics.corrected.labels(kind).inc()
                log.warning(
                    "allocation corrected",
                    pod=record.key,
                    old=_sets_text(record.containers),
                    new=_sets_text(now.containers),
                    kind=kind,
                )
        return patched

    def _conflict_message(
        self, resource: Resource, placement: Placement, conflicts: list[Use], within: int
    ) -> str:
        shape = self.state.shape
        parts = []
        for u in conflicts:
            overlap = mask(placement.cores) & u.cores
            parts.append(
                f"{resource.value} {_ids_text(ids_of(shape, resource, overlap))} "
                f"(NeuronCores {_ids_text(ids_of(shape, Resource.NEURONCORE, overlap))}) in use by "
                f"{u.owner} as {u.resource.value} {_ids_text(u.ids)}"
            )
        if within:
            parts.append(
                f"{resource.value} {_ids_text(ids_of(shape, resource, within))} requested twice "
                "in one call"
            )
        return f"refusing {resource.value} {_ids_text(placement.ids)}: " + "; ".join(parts)


def _sets_text(containers: Sequence[ContainerAllocation]) -> str:
    """main=aws.amazon.com/neuroncore:4,5 side=...: what each container has, for the log."""
    return " ".join(
        f"{c.container}={c.placement.resource.value}:{_ids_text(c.placement.ids)}"
        for c in containers
    )


def _contiguous(cores: Sequence[int]) -> bool:
    return not cores or list(cores) == list(range(cores[0], cores[0] + len(cores)))


def _replace_allocated(record: PodRecord) -> PodRecord:
    return replace(record, allocated=True)
