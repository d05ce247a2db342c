"""Records on each pod what its containers hold, once every Neuron container of it is known
(docs/architecture.md, "Annotations follow the kubelet"): PodResources for app and sidecar
containers (the plugin's own answers name a pod only as far as it could tell, so they never
confirm one alone), the plugin's own answers for regular init containers. A correction that
would claim a core another pod's record claims waits for that record to move; corrections
that wait only on each other (swapped records, chains of moves) are made together."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from neuron_k8s.allocator import Stage, mask, placement_of
from neuron_k8s.logs import get_logger
from neuron_k8s.pods import (
    NEURON_ALLOC_TIME,
    NEURON_ALLOCATED,
    ContainerAllocation,
    placement_annotations,
)

from .ledger import cores_of
from .metrics import Metrics
from .podresources import PodResourcesClient
from .podview import NodePod, PodView
from .state import PluginState

log = get_logger("deviceplugin.reconcile")


@dataclass(frozen=True)
class Change:
    """A patch of a pod's record to what its containers hold."""

    pod: NodePod
    notes: dict[str, str]
    real: tuple[ContainerAllocation, ...]
    cores: int
    moved: bool  # the record claims other cores than before


def _cores(allocations: tuple[ContainerAllocation, ...] | None) -> int:
    out = 0
    for a in allocations or ():
        out |= mask(a.placement.cores)
    return out


class Reconciler:
    def __init__(
        self,
        state: PluginState,
        pods: PodView,
        podresources: PodResourcesClient | None,
        metrics: Metrics,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.state = state
        self.pods = pods
        self.podresources = podresources
        self.metrics = metrics
        self._clock_ns = clock_ns
        # uid -> the last patch sent, not sent again while the watch has not shown it
        self._sent: dict[str, dict[str, str]] = {}

    def real(self, pod: NodePod) -> tuple[ContainerAllocation, ...] | None:
        """What each Neuron container of the pod holds, or None while any is unknown. With
        PodResources, a sidecar or app container is known only once a List shows it."""
        shape = self.state.shape
        ledger = self.state.ledger
        known = ledger.known(pod.namespace, pod.name, pod.uid)
        listed = ledger.listed_for(pod.namespace, pod.name) if self.podresources else known
        out = []
        for c in pod.requests:
            resource = c.request.resource
            source = known if c.request.stage is Stage.INIT else listed
            ids = source.get(c.container, {}).get(resource)
            if ids is None:
                planned = pod.planned(c.container)
                # A regular init container is never listed: after a plugin restart its set is
                # known only from a record already confirmed.
                if c.request.stage is not Stage.INIT or not pod.allocated or planned is None:
                    return None
                out.append(planned)
                continue
            if len(ids) != c.request.count:
                return None
            placement = placement_of(shape, resource, cores_of(shape, resource, ids))
            out.append(ContainerAllocation(c.container, placement))
        return tuple(out)

    def run_once(self) -> int:
        """Take a fresh PodResources List and patch every pod whose record differs from what
        its containers hold. Returns how many pods were patched."""
        snapshot = self.podresources.list() if self.podresources is not None else None
        pods = self.pods.pods()
        with self.state.lock:
            if snapshot is not None:
                self.state.ledger.take(snapshot)
                self.state.refresh()
            todo = self._todo(pods)
        patched = 0
        for change in todo:
            pod = change.pod
            if not self.pods.patch(pod, change.notes):
                continue
            patched += 1
            self._sent[pod.uid] = change.notes
            moved = change.moved and pod.plan is not None
            self.metrics.recorded.labels("corrected" if moved else "confirmed").inc()
            if moved:
                log.warning(
                    "allocation corrected to what the kubelet assigned",
                    pod=pod.key,
                    old=_sets(pod.plan),
                    new=_sets(change.real),
                )
        return patched

    def _todo(self, pods: dict[str, NodePod]) -> list[Change]:
        self._sent = {u: n for u, n in self._sent.items() if u in pods}
        claims = {uid: _cores(p.plan) for uid, p in pods.items() if p.holds}
        out: list[Change] = []
        moves: dict[str, Change] = {}
        for pod in sorted(pods.values(), key=lambda p: (p.alloc_time, p.key)):
            change = self._change(pod)
            if change is None:
                continue
            if change.moved:
                moves[pod.uid] = change
            else:
                out.append(change)
        # A move is made once its new cores are claimed by no other pod's record, counting
        # the moves made with it: drop the moves that would still overlap until none does.
        # What stays (swapped records, a chain) is made together in this round.
        while True:
            after = claims | {uid: c.cores for uid, c in moves.items()}
            blocked = [
                uid
                for uid, c in moves.items()
                if any(cores & c.cores for other, cores in after.items() if other != uid)
            ]
            if not blocked:
                break
            for uid in blocked:
                self.metrics.recorded.labels("deferred").inc()
                log.info("correction waits for another pod's record", pod=moves[uid].pod.key)
                del moves[uid]
        return out + list(moves.values())

    def _change(self, pod: NodePod) -> Change | None:
        if not pod.holds or not pod.requests:
            return None
        real = self.real(pod)
        if real is None:
            return None
        want = placement_annotations(self.pods.node, real)
        want[NEURON_ALLOCATED] = "true"
        record = dict(pod.record)
        if NEURON_ALLOC_TIME not in record:  # placed without the extender
            sent = self._sent.get(pod.uid, {}).get(NEURON_ALLOC_TIME)
            want[NEURON_ALLOC_TIME] = sent or str(self._clock_ns())
        notes = {k: v for k, v in want.items() if record.get(k) != v}
        if not notes or self._sent.get(pod.uid) == notes:
            return None
        cores = _cores(real)
        return Change(pod, notes, real, cores, cores != _cores(pod.plan))


def _sets(allocations: tuple[ContainerAllocation, ...] | None) -> str:
    return " ".join(
        f"{a.container}={a.placement.resource.value}:{','.join(map(str, a.placement.ids))}"
        for a in allocations or ()
    )
