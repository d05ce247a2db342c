"""What the kubelet holds on this node, in cores across both resources: the last PodResources
List and the plugin's own Allocate answers since (docs/architecture.md, "The kubelet's IDs
are the truth"), less what pods the watch shows finished held; until a List has succeeded, the
pods' validated records stand in for it. No I/O."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from neuron_k8s.allocationmetrics import ContainerCores
from neuron_k8s.allocator import Resource, indices, mask
from neuron_k8s.topology import Shape

# (namespace, pod, container) -> resource -> the IDs the kubelet assigned
Listing = dict[tuple[str, str, str], dict[Resource, tuple[int, ...]]]


def cores_of(shape: Shape, resource: Resource, ids: Iterable[int]) -> int:
    """Core mask of IDs of a resource (IDs outside the shape are dropped)."""
    m = 0
    for i in ids:
        if resource.whole_devices:
            if 0 <= i < shape.devices:
                m |= mask(shape.cores_of(i))
        elif 0 <= i < shape.cores:
            m |= 1 << i
    return m


def ids_of(shape: Shape, resource: Resource, cores: int) -> tuple[int, ...]:
    """IDs of a resource that a core mask touches (devices with any core in it)."""
    if resource.whole_devices:
        return tuple(sorted({shape.device_of(c) for c in indices(cores)}))
    return indices(cores)


@dataclass(frozen=True)
class Snapshot:
    """One PodResources List: the Neuron IDs of each listed container, every pod listed (with
    or without IDs of ours), and when the call started (monotonic seconds)."""

    containers: Listing
    pods: frozenset[tuple[str, str]]
    taken: float


@dataclass(frozen=True)
class Served:
    """An Allocate answer: exactly the kubelet's IDs, and the pod and container the plugin
    found the kubelet admitting (None when it could not tell)."""

    resource: Resource
    ids: tuple[int, ...]
    at: float
    uid: str | None = None
    pod: str | None = None  # namespace/name
    container: str | None = None
    init: bool = False  # a regular init container, which PodResources never lists


@dataclass(frozen=True)
class Holding:
    """IDs of one resource the kubelet has assigned, and to whom."""

    resource: Resource
    ids: tuple[int, ...]
    cores: int
    owner: str


@dataclass
class Ledger:
    shape: Shape
    # How long after an Allocate a PodResources List can still miss it: the kubelet records
    # the IDs only once the call has returned.
    confirm_after: float = 1.0
    listed: Snapshot | None = None
    served: list[Served] = field(default_factory=list)
    # (namespace, pod) of pods the watch shows Succeeded or Failed: the kubelet has stopped
    # their containers and freed their IDs, whatever a List (some kubelets list finished
    # pods) or an init container's answer still says.
    finished: set[tuple[str, str]] = field(default_factory=set)
    # (namespace, pod) -> container -> the set the pod's validated record gives each of its
    # sidecar and app containers: what the kubelet holds as far as anyone can tell until a
    # List has succeeded (never listed is unknown, not empty).
    recorded: dict[tuple[str, str], dict[str, dict[Resource, tuple[int, ...]]]] = field(
        default_factory=dict
    )
    # holdings(), worked out once per change of the two above (Allocate asks several times)
    _holdings: list[Holding] | None = field(default=None, repr=False)

    def take(self, snapshot: Snapshot) -> None:
        """A fresh PodResources List: it replaces the last one, and answers older than it by
        `confirm_after` are either in it or gone (regular init containers excepted: they stay
        until their pod goes). Pods the watch shows finished are left out."""
        if self.finished:
            snapshot = _without(snapshot, self.finished)
        self.listed = snapshot
        self._holdings = None
        horizon = snapshot.taken - self.confirm_after
        self.served = [s for s in self.served if s.at > horizon or (s.init and s.uid)]

    def serve(self, served: Served) -> None:
        """Record an Allocate answer. The kubelet hands out an ID of a resource again only once
        its holder is gone, or to reuse, within a pod, the IDs of its regular init containers
        (whose records stay until the pod goes), so other records of these IDs belong to
        containers that have ended."""
        self.forget_reused(served.resource, served.ids)
        self.served.append(served)
        self._holdings = None

    def forget_reused(self, resource: Resource, ids: Iterable[int]) -> None:
        fresh = set(ids)

        def ended(s: Served) -> bool:
            return s.resource is resource and bool(fresh & set(s.ids)) and not s.init

        self.served = [s for s in self.served if not ended(s)]
        self._holdings = None
        listed = self.listed.containers if self.listed else {}
        if not any(fresh & set(by_res.get(resource, ())) for by_res in listed.values()):
            return
        kept: Listing = {}
        for key, by_res in listed.items():
            if fresh & set(by_res.get(resource, ())):
                by_res = {r: i for r, i in by_res.items() if r is not resource}
            if by_res:
                kept[key] = by_res
        assert self.listed is not None
        self.listed = Snapshot(kept, self.listed.pods, self.listed.taken)

    def forget_pod(self, namespace: str, name: str, uid: str) -> None:
        """The pod is gone from the API, which happens only once the kubelet has stopped its
        containers: what the last List and the answers say it held is free."""
        self._drop(namespace, name, uid)
        self.finished.discard((namespace, name))
        self.recorded.pop((namespace, name), None)

    def finish_pod(self, namespace: str, name: str, uid: str) -> None:
        """The watch shows the pod Succeeded or Failed (a Job's pod stays in the API, and so
        does one that failed admission): its containers have stopped, so what it held, its
        regular init containers' IDs included, is free, and later Lists that still show it
        are not believed."""
        self._drop(namespace, name, uid)
        self.finished.add((namespace, name))
        self.recorded.pop((namespace, name), None)

    def note_record(
        self, namespace: str, name: str, sets: dict[str, dict[Resource, tuple[int, ...]]]
    ) -> None:
        """The sets a pod's validated record gives its sidecar and app containers (none: no
        usable record): what counts as held until a List has succeeded."""
        key = (namespace, name)
        if sets and key not in self.finished:
            if self.recorded.get(key) == sets:
                return
            self.recorded[key] = sets
        elif self.recorded.pop(key, None) is None:
            return
        if self.listed is None:
            self._holdings = None

    def _drop(self, namespace: str, name: str, uid: str) -> None:
        self.served = [s for s in self.served if s.uid != uid]
        self._holdings = None
        if self.listed is not None:
            self.listed = _without(self.listed, {(namespace, name)})

    # --- questions -----------------------------------------------------------------------
    def holdings(self) -> list[Holding]:
        if self._holdings is not None:
            return self._holdings
        out = []
        listed = self.listed.containers if self.listed else self._by_record()
        for (ns, pod, container), by_res in listed.items():
            for resource, ids in by_res.items():
                cores = cores_of(self.shape, resource, ids)
                owner = f"{ns}/{pod}/{container}"
                if self.listed is None:
                    owner += " (by its record: the kubelet's PodResources was never listed)"
                out.append(Holding(resource, ids, cores, owner))
        for s in self.served:
            owner = f"{s.pod}/{s.container}" if s.pod else "a container admitted moments ago"
            out.append(Holding(s.resource, s.ids, cores_of(self.shape, s.resource, s.ids), owner))
        self._holdings = out
        return out

    def containers(self) -> list[ContainerCores]:
        """The cores each container holds, by the same account as holdings() (names empty for
        an answer the plugin could not attribute), for the allocation metrics."""
        out = []
        listed = self.listed.containers if self.listed else self._by_record()
        for (ns, pod, container), by_res in listed.items():
            for resource, ids in by_res.items():
                out.append(ContainerCores(ns, pod, container, cores_of(self.shape, resource, ids)))
        for s in self.served:
            ns, _, pod = (s.pod or "").partition("/")
            cores = cores_of(self.shape, s.resource, s.ids)
            out.append(ContainerCores(ns, pod, s.container or "", cores))
        return out

    def held(self, resource: Resource | None = None) -> int:
        """Core mask of everything held through `resource` (through either when None)."""
        m = 0
        for h in self.holdings():
            if resource is None or h.resource is resource:
                m |= h.cores
        return m

    def conflicts(self, resource: Resource, cores: int) -> list[Holding]:
        """Holders, through the other resource, of any of `cores`. Overlaps within one resource
        are the kubelet's own business: it hands out an ID twice only to reuse it."""
        return [h for h in self.holdings() if h.resource is not resource and h.cores & cores]

    def withheld(self, resource: Resource) -> frozenset[int]:
        """IDs of `resource` that sit on cores held through the other resource: what the
        kubelet would count as free for `resource` although it is not."""
        own = set(ids_of(self.shape, resource, self.held(resource)))
        other = Resource.NEURONCORE if resource.whole_devices else Resource.NEURON
        return frozenset(set(ids_of(self.shape, resource, self.held(other))) - own)

    def known(
        self, namespace: str, name: str, uid: str
    ) -> dict[str, dict[Resource, tuple[int, ...]]]:
        """The IDs each container of a pod holds, as far as the kubelet's List and the
        answers labelled with the pod tell."""
        out: dict[str, dict[Resource, tuple[int, ...]]] = {}
        listed = self.listed.containers if self.listed else {}
        for (ns, pod, container), by_res in listed.items():
            if (ns, pod) == (namespace, name):
                out.setdefault(container, {}).update(by_res)
        for s in self.served:
            if s.uid == uid and s.container is not None:
                out.setdefault(s.container, {})[s.resource] = s.ids
        return out

    def _by_record(self) -> Listing:
        return {
            (ns, pod, container): by_res
            for (ns, pod), containers in self.recorded.items()
            for container, by_res in containers.items()
        }

    def listed_for(self, namespace: str, name: str) -> dict[str, dict[Resource, tuple[int, ...]]]:
        """The IDs each container of a pod holds as the kubelet's last List says (nothing of
        the plugin's own answers, which name the pod only as far as the plugin could tell)."""
        listed = self.listed.containers if self.listed else {}
        return {
            c: dict(by_res)
            for (ns, pod, c), by_res in listed.items()
            if (ns, pod) == (namespace, name)
        }


def _without(snapshot: Snapshot, pods: set[tuple[str, str]]) -> Snapshot:
    kept = {k: v for k, v in snapshot.containers.items() if k[:2] not in pods}
    return Snapshot(kept, snapshot.pods - pods, snapshot.taken)
