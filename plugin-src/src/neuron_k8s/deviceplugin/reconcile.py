"""Records on each pod what its containers hold, once every Neuron container of it is known
(docs/architecture.md, "Annotations follow the kubelet"): PodResources for app and sidecar
containers, the plugin's own answers for regular init containers. A correction that would
claim a core another pod's record claims waits for that record to move."""

from __future__ import annotations

import time
from collections.abc import Callable

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
        """What each Neuron container of the pod holds, or None while any is unknown."""
        shape = self.state.shape
        known = self.state.ledger.known(pod.namespace, pod.name, pod.uid)
        out = []
        for c in pod.requests:
            resource = c.request.resource
            ids = known.get(c.container, {}).get(resource)
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
        for pod, notes, real, moved in todo:
            if not self.pods.patch(pod, notes):
                continue
            patched += 1
            self._sent[pod.uid] = notes
            self.metrics.recorded.labels("corrected" if moved else "confirmed").inc()
            if moved:
                log.warning(
                    "allocation corrected to what the kubelet assigned",
                    pod=pod.key,
                    old=_sets(pod.plan),
                    new=_sets(real),
                )
        return patched

    def _todo(
        self, pods: dict[str, NodePod]
    ) -> list[tuple[NodePod, dict[str, str], tuple[ContainerAllocation, ...], bool]]:
        self._sent = {u: n for u, n in self._sent.items() if u in pods}
        claims = {uid: _cores(p.plan) for uid, p in pods.items() if p.holds}
        out = []
        for pod in sorted(pods.values(), key=lambda p: (p.alloc_time, p.key)):
            if not pod.holds or not pod.requests:
                continue
            real = self.real(pod)
            if real is None:
                continue
            want = placement_annotations(self.pods.node, real)
            want[NEURON_ALLOCATED] = "true"
            if NEURON_ALLOC_TIME not in dict(pod.record):
                want[NEURON_ALLOC_TIME] = str(self._clock_ns())  # placed without the extender
            record = dict(pod.record)
            notes = {k: v for k, v in want.items() if record.get(k) != v}
            if not notes or self._sent.get(pod.uid) == notes:
                continue
            cores = _cores(real)
            moved = cores != claims.get(pod.uid, 0)
            if moved and any(c & cores for u, c in claims.items() if u != pod.uid):
                self.metrics.recorded.labels("deferred").inc()
                log.info("correction waits for another pod's record", pod=pod.key)
                continue
            claims[pod.uid] = cores
            out.append((pod, notes, real, moved and pod.plan is not None))
        return out


def _sets(allocations: tuple[ContainerAllocation, ...] | None) -> str:
    return " ".join(
        f"{a.container}={a.placement.resource.value}:{','.join(map(str, a.placement.ids))}"
        for a in allocations or ()
    )
