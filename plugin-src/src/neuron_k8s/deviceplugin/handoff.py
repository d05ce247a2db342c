"""Which pod and container each of the kubelet's calls is for (docs/architecture.md, "The
kubelet's IDs are the truth"). Neither GetPreferredAllocation nor Allocate names one, but the
kubelet admits one pod at a time and goes through its containers in order: a preference names
the pod being admitted (find_admitting), the Allocate right after it is for that container, and
every Allocate moves the pod's cursor to its next Neuron container, so an Allocate the kubelet
makes without asking first (reused init-container IDs covered the container) is that one's."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from neuron_k8s.allocator import Resource, Stage
from neuron_k8s.pods import ContainerRequest

from .ledger import Ledger, Served
from .podview import NodePod

# The kubelet calls Allocate right after GetPreferredAllocation for the same container, and
# the next container's Allocate right after the previous one's.
FOLLOW_WINDOW = 10.0


@dataclass(frozen=True)
class Admitting:
    """The pod the kubelet is admitting, and the container it is allocating."""

    pod: NodePod
    container: ContainerRequest

    def served(self, resource: Resource, ids: tuple[int, ...], at: float) -> Served:
        c = self.container
        init = c.request.stage is Stage.INIT
        return Served(resource, ids, at, self.pod.uid, self.pod.key, c.container, init)

    def after(self) -> int:
        """Index in the pod's requests of the container after this one."""
        return self.pod.requests.index(self.container) + 1


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


class Handoff:
    """The kubelet's progress, as far as the plugin can follow it: the pod the last
    preference of each resource found, and the cursor of the pod being admitted (its next
    Neuron container), moved by every Allocate. Not thread-safe: used under the state lock."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        # resource -> the pod the last GetPreferredAllocation found admitted, and when
        self._asked: dict[Resource, tuple[Admitting | None, float]] = {}
        # the pod being admitted, the index in its requests of its next container, and when
        # the cursor last moved
        self._cursor: tuple[NodePod, int, float] | None = None

    def asked(self, resource: Resource, admitting: Admitting | None) -> None:
        self._asked[resource] = (admitting, self._clock())

    def allocating(self, resource: Resource, sizes: list[int]) -> Admitting | None:
        """Whom an Allocate of containers of `sizes` IDs is for (None: cannot tell), and move
        the cursor past it. After a preference, the container it was asked for; without one,
        the admitting pod's next container, when that asks for this resource and count."""
        now = self._clock()
        asked = self._asked.pop(resource, None)
        if asked is not None and now - asked[1] <= FOLLOW_WINDOW:
            found = asked[0] if len(sizes) == 1 else None
        else:
            found = self._next(resource, sizes, now)
        if found is None:
            self._cursor = None
        else:
            self._cursor = (found.pod, found.after(), now)
        return found

    def refused(self, resource: Resource) -> None:
        """Allocate refused: the kubelet fails the pod's admission."""
        self._asked.pop(resource, None)
        self._cursor = None

    def _next(self, resource: Resource, sizes: list[int], now: float) -> Admitting | None:
        if self._cursor is None or len(sizes) != 1:
            return None
        pod, index, at = self._cursor
        if now - at > FOLLOW_WINDOW or index >= len(pod.requests):
            return None
        c = pod.requests[index]
        if c.request.resource is not resource or c.request.count != sizes[0]:
            return None
        return Admitting(pod, c)
