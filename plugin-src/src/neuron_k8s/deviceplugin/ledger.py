"""What is in use on this node, across both resources, from every source the plugin has.

The kubelet accounts aws.amazon.com/neuron and aws.amazon.com/neuroncore separately: it does
not know that core 2 sits on device 1. The plugin does, so it keeps one ledger of used cores
(a device handed out whole uses all of its cores), fed by:

- the kubelet's PodResources API (List): which IDs of each resource the kubelet assigned to the
  containers of active pods; the truth for pods placed without the extender;
- the pods bound to this node, through the Kubernetes API: the extender's allocation
  annotations, which hold the real IDs (the kubelet's own IDs for those pods may differ);
- the plugin's own recent grants, until one of the above shows them (or a TTL passes), which
  closes the window between Allocate and the next PodResources poll.

The annotation says what the extender planned, not necessarily what a container got: Allocate
carries no pod identity, so the plugin guesses which pod the kubelet is admitting, and when the
kubelet admits identical pods in another order, two pods swap their sets. The plugin remembers
what it answered for each set of kubelet IDs (Given); joined with PodResources (which pod and
container holds those kubelet IDs), that is the truth, and it wins over the annotation
(effective_pods). A pod still waiting whose planned set went to another pod that way inherits
the set that pod had been planned.

It answers three questions: which cores are in use or planned (GetPreferredAllocation steers
away from them), which cores a container holds (Allocate refuses sets that overlap those: a
plan of a pod still waiting is a reservation, not a container, and refusing on account of it
would fail a pod's admission for nothing), and which IDs of a resource are in use through
something the kubelet does not know under that ID (the plugin reports those as Unhealthy so
that the kubelet and the scheduler stop counting them as free).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from neuron_k8s.allocator import Placement, Resource, indices, mask, placement_of
from neuron_k8s.logs import get_logger
from neuron_k8s.pods import (
    ALLOCATION,
    AWS_NEURON_IDS,
    NEURON_ALLOC_TIME,
    BadPod,
    ContainerAllocation,
    container_requests,
    holds_resources,
    is_allocated,
    parse_id_list,
    read_allocation,
)
from neuron_k8s.topology import Shape

log = get_logger("deviceplugin.ledger")

# (namespace, pod, container) -> resource -> IDs the kubelet assigned
KubeletView = dict[tuple[str, str, str], dict[Resource, tuple[int, ...]]]


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
class PodRecord:
    """A pod bound to this node that carries an allocation from the extender."""

    uid: str
    namespace: str
    name: str
    alloc_time: int
    created: str
    allocated: bool
    holds: bool
    containers: tuple[ContainerAllocation, ...]

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def _aws_containers(
    pod: Mapping[str, Any], shape: Shape, ids_text: str
) -> list[ContainerAllocation]:
    """Per-container sets from AWS's own annotation, which only lists the IDs of the whole pod
    in container order: split it by the containers' request sizes."""
    ids = parse_id_list(ids_text)
    out = []
    for req in container_requests(pod):
        resource, count = req.request.resource, req.request.count
        mine, ids = ids[:count], ids[count:]
        if len(mine) != count:
            raise BadPod(f"{AWS_NEURON_IDS} has fewer IDs than the containers ask for")
        out.append(
            ContainerAllocation(
                req.container, placement_of(shape, resource, cores_of(shape, resource, mine))
            )
        )
    if ids:
        raise BadPod(f"{AWS_NEURON_IDS} has more IDs than the containers ask for")
    return out


def _valid(shape: Shape, p: Placement) -> bool:
    limit = shape.devices if p.resource.whole_devices else shape.cores
    return (
        bool(p.ids)
        and all(0 <= i < limit for i in p.ids)
        and all(0 <= c < shape.cores for c in p.cores)
    )


def pod_record(pod: Mapping[str, Any], shape: Shape) -> PodRecord | None:
    """The allocation the extender recorded on a pod, or None when it has none (or an
    unreadable one, which is logged: such a pod cannot be served from its annotation)."""
    meta = pod.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    if ALLOCATION not in annotations and AWS_NEURON_IDS not in annotations:
        return None
    try:
        if ALLOCATION in annotations:
            found = read_allocation(pod)
            containers = found[1] if found else []
        else:
            containers = _aws_containers(pod, shape, str(annotations[AWS_NEURON_IDS]))
        try:
            alloc_time = int(str(annotations.get(NEURON_ALLOC_TIME, "0")))
        except ValueError:
            alloc_time = 0
    except (BadPod, ValueError) as err:
        log.warning(
            "pod allocation unreadable",
            pod=f"{meta.get('namespace')}/{meta.get('name')}",
            error=str(err),
        )
        return None
    if not all(_valid(shape, c.placement) for c in containers):
        log.warning(
            "pod allocation outside this node's shape",
            pod=f"{meta.get('namespace')}/{meta.get('name')}",
            shape=shape.name,
        )
        return None
    return PodRecord(
        uid=str(meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}"),
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        alloc_time=alloc_time,
        created=str(meta.get("creationTimestamp", "")),
        allocated=is_allocated(pod),
        holds=holds_resources(pod),
        containers=tuple(containers),
    )


@dataclass(frozen=True)
class Use:
    """One holder of cores: who, in which resource, which IDs and cores."""

    owner: str
    resource: Resource
    ids: tuple[int, ...]
    cores: int
    pod: str | None = None
    container: str | None = None
    # False for the plan of a container the kubelet has not admitted yet.
    held: bool = True


@dataclass
class Grant:
    """An Allocate answer not yet visible in any other source."""

    resource: Resource
    ids: tuple[int, ...]
    cores: int
    at: float
    pod: str | None = None
    container: str | None = None
    # What the kubelet sent (the IDs it counts as assigned, whatever was handed out).
    kubelet_ids: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Given:
    """What the plugin answered for one container request: the kubelet's IDs, the set it put
    in the environment, and the pod and container it believed it was serving (None: the
    kubelet's own IDs, no pod guessed)."""

    resource: Resource
    kubelet_ids: tuple[int, ...]
    placement: Placement
    uid: str | None = None
    pod: str | None = None
    container: str | None = None


# (namespace, pod, container) -> resource -> what that container was really given
Truth = dict[tuple[str, str, str], dict[Resource, Given]]


@dataclass
class Ledger:
    shape: Shape
    grant_ttl: float = 60.0
    clock: Callable[[], float] = time.monotonic
    kubelet: KubeletView | None = None
    pods: dict[str, PodRecord] = field(default_factory=dict)
    grants: list[Grant] = field(default_factory=list)
    # (resource, kubelet IDs) -> the answer; at most one per kubelet ID (see remember)
    given: dict[tuple[Resource, tuple[int, ...]], Given] = field(default_factory=dict)

    # --- sources -------------------------------------------------------------------------
    def set_kubelet(self, view: KubeletView | None) -> None:
        self.kubelet = view

    def set_pods(self, records: Iterable[PodRecord]) -> None:
        self.pods = {r.uid: r for r in records}

    def put_pod(self, record: PodRecord) -> None:
        self.pods[record.uid] = record

    def drop_pod(self, uid: str) -> None:
        self.pods.pop(uid, None)

    def forget_pod(self, namespace: str, name: str) -> None:
        """The pod is gone from the API, which happens only once the kubelet has stopped its
        containers: its entries in the last PodResources view are stale."""
        if self.kubelet:
            for key in [k for k in self.kubelet if k[:2] == (namespace, name)]:
                del self.kubelet[key]

    def grant(self, g: Grant) -> None:
        self.grants.append(g)

    def remember(self, g: Given) -> None:
        """Record an Allocate answer. The kubelet hands out the same IDs of a resource again
        only once their holder is gone, so older answers and PodResources entries with any of
        these IDs are dropped (this also bounds the memory: one answer per kubelet ID)."""
        ids = tuple(sorted(g.kubelet_ids))
        fresh = set(ids)
        self.given = {
            k: v
            for k, v in self.given.items()
            if not (v.resource is g.resource and fresh & set(v.kubelet_ids))
        }
        self.forget_reused(g.resource, ids)
        self.given[(g.resource, ids)] = replace(g, kubelet_ids=ids)

    def forget_reused(self, resource: Resource, kubelet_ids: Iterable[int]) -> None:
        """The kubelet never hands out an ID of a resource that it still has assigned, so when
        it hands out `kubelet_ids`, earlier records of those IDs under the kubelet's numbering
        (grants of its own IDs, PodResources entries) belong to containers that are gone."""
        fresh = set(kubelet_ids)
        self.grants = [
            g
            for g in self.grants
            if not (g.resource is resource and g.kubelet_ids and fresh & set(g.kubelet_ids))
        ]
        if self.kubelet:
            for key, by_res in list(self.kubelet.items()):
                if fresh & set(by_res.get(resource, ())):
                    by_res = {r: i for r, i in by_res.items() if r is not resource}
                    if by_res:
                        self.kubelet[key] = by_res
                    else:
                        del self.kubelet[key]

    # --- the truth ---------------------------------------------------------------------
    def truth(self) -> Truth:
        """What each container the kubelet lists was really given, where the plugin remembers
        its answer for those kubelet IDs (not after a plugin restart)."""
        out: Truth = {}
        for key, by_res in (self.kubelet or {}).items():
            for resource, ids in by_res.items():
                g = self.given.get((resource, tuple(sorted(ids))))
                if g is not None:
                    out.setdefault(key, {})[resource] = g
        return out

    def effective_pods(self) -> dict[str, PodRecord]:
        """The pod records with each container's set replaced by what it really got (truth),
        and a pending container whose planned set is really held by another pod moved to a
        set freed that way (same resource and size, overlapping nothing held or planned)."""
        truth = self.truth()
        out: dict[str, PodRecord] = {}
        held = 0
        displaced: list[Placement] = []
        pending: list[tuple[str, int]] = []
        for uid, r in self.pods.items():
            containers = list(r.containers)
            for i, c in enumerate(containers):
                g = truth.get((r.namespace, r.name, c.container), {}).get(c.placement.resource)
                if g is None:
                    pending.append((uid, i))
                    continue
                if r.holds:
                    held |= mask(g.placement.cores)
                if g.placement != c.placement:
                    containers[i] = ContainerAllocation(c.container, g.placement)
                    displaced.append(c.placement)
            out[uid] = (
                replace(r, containers=tuple(containers)) if containers != list(r.containers) else r
            )
        if not displaced:
            return out
        planned = held
        stuck: list[tuple[str, int]] = []
        for uid, i in pending:
            r = out[uid]
            if not r.holds:
                continue
            cores = mask(r.containers[i].placement.cores)
            if cores & held:
                stuck.append((uid, i))
            else:
                planned |= cores
        stuck.sort(key=lambda k: (out[k[0]].alloc_time, out[k[0]].created, out[k[0]].key, k[1]))
        for uid, i in stuck:
            r = out[uid]
            want = r.containers[i].placement
            for p in displaced:
                if (
                    p.resource is want.resource
                    and len(p.ids) == len(want.ids)
                    and not mask(p.cores) & planned
                ):
                    planned |= mask(p.cores)
                    containers = list(r.containers)
                    containers[i] = ContainerAllocation(containers[i].container, p)
                    out[uid] = replace(r, containers=tuple(containers))
                    break
        return out

    def progress(self) -> tuple[dict[str, set[str]], set[str]]:
        """Which containers of each pod (by uid) have been handed their set, and which pods
        were believed served but really were not (an answer meant for them went to another
        pod, and the kubelet shows nothing for them yet): those wait for their set again."""
        view = self.kubelet or {}
        listed: dict[tuple[Resource, tuple[int, ...]], tuple[str, str, str]] = {}
        for key, by_res in view.items():
            for resource, ids in by_res.items():
                listed[(resource, tuple(sorted(ids)))] = key
        done: dict[str, set[str]] = {}
        for r in self.pods.values():
            for c in r.containers:
                # After a plugin restart, the kubelet still knows which containers it allocated.
                if c.placement.resource in view.get((r.namespace, r.name, c.container), {}):
                    done.setdefault(r.uid, set()).add(c.container)
        wrong: list[Given] = []
        # (resource, size) of answers the kubelet has not listed yet: any of them may be the
        # one a seemingly unserved pod really got, under another pod's name.
        unconfirmed: set[tuple[Resource, int]] = set()
        for key, g in self.given.items():
            if g.uid is None or g.container is None:
                continue
            holder = listed.get(key)
            if holder is None:
                if g.uid not in self.pods:
                    continue  # its pod is gone: an answer no container holds any more
                done.setdefault(g.uid, set()).add(g.container)  # not listed yet: trust the guess
                unconfirmed.add((g.resource, len(g.kubelet_ids)))
            elif (f"{holder[0]}/{holder[1]}", holder[2]) != (g.pod, g.container):
                wrong.append(g)  # another container really got it
        # Reopen a pod only when every answer of its kind is accounted for: reopening on a
        # partial view would serve its real set a second time.
        reopened = {
            g.uid
            for g in wrong
            if g.uid in self.pods
            and g.container not in done.get(str(g.uid), set())
            and (g.resource, len(g.kubelet_ids)) not in unconfirmed
        }
        return done, reopened

    def describe(self) -> dict[str, Any]:
        """The ledger's sources and conclusions, for the log of a refusal."""
        done, reopened = self.progress()
        return {
            "kubelet": {
                "/".join(k): {r.value: list(i) for r, i in v.items()}
                for k, v in (self.kubelet or {}).items()
            },
            "pods": {
                r.key: {
                    "allocated": r.allocated,
                    "holds": r.holds,
                    "sets": {c.container: list(c.placement.ids) for c in r.containers},
                }
                for r in self.pods.values()
            },
            "given": [
                {"ids": list(g.kubelet_ids), "set": list(g.placement.ids), "pod": g.pod}
                for g in self.given.values()
            ],
            "grants": [{"ids": list(g.ids), "pod": g.pod} for g in self.grants],
            "done": {u: sorted(c) for u, c in done.items()},
            "reopened": sorted(reopened),
        }

    # --- questions -----------------------------------------------------------------------
    def _prune(self) -> None:
        now = self.clock()
        seen: set[tuple[Resource, tuple[int, ...]]] = set()
        for by_res in (self.kubelet or {}).values():
            seen.update((r, tuple(sorted(i))) for r, i in by_res.items())
        covered = {r.key for r in self.pods.values()}
        self.grants = [
            g
            for g in self.grants
            if now - g.at <= self.grant_ttl
            and not (g.pod and g.pod in covered)
            and not (
                g.kubelet_ids is not None and (g.resource, tuple(sorted(g.kubelet_ids))) in seen
            )
        ]

    def uses(self) -> list[Use]:
        self._prune()
        out: list[Use] = []
        annotated = {(r.namespace, r.name) for r in self.pods.values()}
        truth = self.truth()
        done, reopened = self.progress()
        for r in self.effective_pods().values():
            if not r.holds:
                continue
            for c in r.containers:
                p = c.placement
                served = c.container in done.get(r.uid, set()) or (
                    r.allocated and r.uid not in reopened
                )
                out.append(
                    Use(
                        f"{r.key}/{c.container}",
                        p.resource,
                        p.ids,
                        mask(p.cores),
                        r.key,
                        c.container,
                        held=served,
                    )
                )
        for (ns, pod, container), by_res in (self.kubelet or {}).items():
            if (ns, pod) in annotated:
                continue  # counted above, from the truth or the annotation
            for resource, ids in by_res.items():
                g = truth.get((ns, pod, container), {}).get(resource)
                if g is not None:
                    # The plugin's answer for these kubelet IDs: what the container really has.
                    out.append(
                        Use(
                            f"{ns}/{pod}/{container}",
                            resource,
                            g.placement.ids,
                            mask(g.placement.cores),
                            f"{ns}/{pod}",
                            container,
                        )
                    )
                    continue
                out.append(
                    Use(
                        f"{ns}/{pod}/{container}",
                        resource,
                        ids,
                        cores_of(self.shape, resource, ids),
                        f"{ns}/{pod}",
                        container,
                    )
                )
        for g in self.grants:
            owner = f"{g.pod}/{g.container}" if g.pod else "a container admitted moments ago"
            out.append(Use(owner, g.resource, g.ids, g.cores, g.pod, g.container))
        return out

    def used_cores(self) -> int:
        m = 0
        for u in self.uses():
            m |= u.cores
        return m

    def held_cores(self) -> int:
        """Cores held by containers (without the plans of pods still waiting)."""
        m = 0
        for u in self.uses():
            if u.held:
                m |= u.cores
        return m

    def conflicts(self, cores: int) -> list[Use]:
        """Containers holding any of `cores` (plans of pods still waiting do not count)."""
        return [u for u in self.uses() if u.held and u.cores & cores]

    def withheld(self, resource: Resource) -> frozenset[int]:
        """IDs of `resource` in use through something the kubelet does not count under that ID
        of that resource: cores of a device handed out or planned whole, devices with a core
        handed out or planned, and the real IDs of containers whose kubelet IDs differ. Plans
        of the same resource are never hidden: the kubelet must be able to hand them out."""
        known: set[int] = set()
        for by_res in (self.kubelet or {}).values():
            known.update(by_res.get(resource, ()))
        for g in self.grants:
            if g.resource is resource and g.kubelet_ids:
                known.update(g.kubelet_ids)
        for given in self.given.values():
            if given.resource is resource and given.uid in self.pods:
                known.update(given.kubelet_ids)
        out: set[int] = set()
        for u in self.uses():
            if u.resource is not resource:
                out.update(ids_of(self.shape, resource, u.cores))
            elif u.held:
                out.update(set(u.ids) - known)
        return frozenset(out)
