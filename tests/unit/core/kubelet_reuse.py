"""An independent, brute-force statement of how the kubelet hands a pod's containers their IDs
(Kubernetes 1.34 pkg/kubelet/cm/devicemanager), to check the allocator's placement of whole
pods against. Core masks throughout; the topology comes from core_strategies.valid_sets.

Per resource, in the pod's order: a container first takes IDs from what earlier regular init
containers left for reuse; the pool is a Go map, so when it holds more than the container asks
for, any subset of that size may be taken. Only when the pool holds fewer does the plugin get
a say: the container's set then includes the whole pool, and its new IDs are free (neither on
the node's blocked cores nor held by an earlier container of the pod, of either resource). A
regular init container adds its IDs to the pool; a sidecar or app container removes its own.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import cache
from itertools import combinations

from core_strategies import valid_sets
from hypothesis import strategies as st
from neuron_k8s.allocator import Request, Resource, Stage
from neuron_k8s.topology import Rule, Shape, shape_for

Pools = tuple[tuple[Resource, int], ...]


def id_masks(shape: Shape, resource: Resource, cores: int) -> list[int]:
    """The IDs (of the resource) that a core mask holds, each as a core mask."""
    cpd = shape.cores_per_device if resource.whole_devices else 1
    unit = (1 << cpd) - 1
    return [unit << i for i in range(0, shape.cores, cpd) if cores >> i & unit == unit]


def _pool(pools: Pools, resource: Resource) -> int:
    return dict(pools).get(resource, 0)


def _with(pools: Pools, request: Request, cores: int) -> Pools:
    pool = _pool(pools, request.resource)
    pool = pool | cores if request.stage is Stage.INIT else pool & ~cores
    return tuple(sorted({**dict(pools), request.resource: pool}.items()))


def kubelet_picks(shape: Shape, request: Request, pool: int) -> list[int] | None:
    """Every set the kubelet may take from the pool alone, or None when the pool is too small
    and the plugin is asked for the rest."""
    ids = id_masks(shape, request.resource, pool)
    if request.count > len(ids):
        return None
    return [sum(c) for c in combinations(ids, request.count)]


def fit_exists(shape: Shape, requests: Sequence[Request], blocked: int, every_pick: bool) -> bool:
    """Whether the pod can be admitted: the plugin may choose any valid free set when asked;
    the kubelet's picks are any (every_pick=False) or all of those it may make (True)."""
    sets = [frozenset(valid_sets(shape, r)) for r in requests]

    @cache
    def go(k: int, used: int, pools: Pools) -> bool:
        if k == len(requests):
            return True
        r = requests[k]
        pool = _pool(pools, r.resource)
        picks = kubelet_picks(shape, r, pool)
        if picks is not None:
            outcomes = (p in sets[k] and go(k + 1, used, _with(pools, r, p)) for p in picks)
            return all(outcomes) if every_pick else any(outcomes)
        return any(
            go(k + 1, used | s, _with(pools, r, s))
            for s in sets[k]
            if s & pool == pool and not s & ~pool & used
        )

    return go(0, blocked, ())


def plan_error(shape: Shape, requests: Sequence[Request], blocked: int, plan: Sequence[int]) -> str:
    """Why the kubelet could not hand out exactly these sets (one core mask per container), or
    '' when it could."""
    used, pools = blocked, ()
    for k, (r, s) in enumerate(zip(requests, plan, strict=True)):
        pool = _pool(pools, r.resource)
        picks = kubelet_picks(shape, r, pool)
        if s not in set(valid_sets(shape, r)):
            return f"container {k}: {s:b} is not a valid set"
        if picks is not None and s not in picks:
            return f"container {k}: {s:b} is not a pick from the pool {pool:b}"
        if picks is None and (s & pool != pool or s & ~pool & used):
            return f"container {k}: {s:b} misses the pool {pool:b} or takes a held core"
        used, pools = used | s, _with(pools, r, s)
    return ""


def outcomes_of_plan(
    shape: Shape, requests: Sequence[Request], blocked: int, plan: Sequence[int]
) -> Iterator[str]:
    """For every sequence of picks the kubelet may make, what goes wrong when the plugin
    answers each container that asks it with the planned set ('' when nothing does)."""

    def go(k: int, used: int, pools: Pools) -> Iterator[str]:
        if k == len(requests):
            yield ""
            return
        r, planned = requests[k], plan[k]
        pool = _pool(pools, r.resource)
        picks = kubelet_picks(shape, r, pool)
        if picks is None:
            if planned & pool != pool or planned & ~pool & used:
                yield f"container {k}: the plan {planned:b} misses the pool {pool:b}"
                return
            picks = [planned]
        for p in picks:
            if p not in set(valid_sets(shape, r)):
                yield f"container {k}: the kubelet's pick {p:b} is not a valid set"
            else:
                yield from go(k + 1, used | p, _with(pools, r, p))

    return go(0, blocked, ())


small_shapes = st.one_of(
    st.builds(Shape, st.integers(1, 6), st.integers(1, 2)),  # rings
    st.sampled_from(
        [
            shape_for("inf2.24xlarge"),
            shape_for("trn1.32xlarge"),
            Shape(4, 2, Rule.ALIGNED),
            Shape(8, 1, Rule.ALIGNED),
        ]
    ),
)


@st.composite
def pods(draw: st.DrawFn, shape: Shape) -> list[Request]:
    """1 to 3 containers in the kubelet's order: init containers and sidecars, then apps;
    mostly of one resource, so that later containers reuse what init containers leave."""
    one = draw(st.sampled_from([None, Resource.NEURON, Resource.NEURONCORE, Resource.NEURONCORE]))
    either = st.sampled_from([Resource.NEURON, Resource.NEURONCORE])

    def container(stages: list[Stage]) -> Request:
        res = one or draw(either)
        n = min(draw(st.sampled_from([1, 1, 2, 3, 4])), id_count(shape, res))
        return Request(res, n, draw(st.sampled_from(stages)))

    size = draw(st.integers(1, 3))
    first = draw(st.integers(0, size))
    return [container([Stage.INIT, Stage.INIT, Stage.SIDECAR]) for _ in range(first)] + [
        container([Stage.APP]) for _ in range(size - first)
    ]


def id_count(shape: Shape, resource: Resource) -> int:
    return shape.devices if resource.whole_devices else shape.cores


@st.composite
def usages(draw: st.DrawFn, shape: Shape) -> tuple[int, int]:
    """(used cores, unhealthy devices) as masks; sparse, so that most pods still fit."""
    used = 0
    for c in draw(st.lists(st.integers(0, shape.cores - 1), max_size=shape.cores // 2)):
        used |= 1 << c
    unhealthy = 0
    for d in draw(st.lists(st.integers(0, shape.devices - 1), max_size=1)):
        unhealthy |= 1 << d
    return used, unhealthy


def blocked(shape: Shape, used: int, unhealthy: int) -> int:
    """The cores no container may newly take: used ones and every core of an unhealthy device."""
    cpd = shape.cores_per_device
    for d in range(shape.devices):
        if unhealthy >> d & 1:
            used |= ((1 << cpd) - 1) << d * cpd
    return used
