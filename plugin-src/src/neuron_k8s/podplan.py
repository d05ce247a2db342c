"""Sets for every container of one pod, placed the way the kubelet will hand them out
(docs/architecture.md, "Init containers and sidecars"). Pure.

The kubelet admits a pod's containers in order (init containers, sidecars among them, then app
containers). Per resource, a regular init container leaves its IDs for reuse: each later
container takes from them first, and only asks the plugin for the rest, which must include
what it took. A sidecar or app container keeps what it took, so those leave the pool. So a
set that later containers grow from and the sets grown from it must be chosen together: the
search below finds a fit whenever one exists, and among the fits it prefers what choosing one
container at a time would: for app containers alone, largest first (small ones fill the gaps
around large ones); for a regular init container, the best set of the container that grows
from it, and the init container's best set inside that.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

from .coresets import (
    NoFit,
    Placement,
    Request,
    Resource,
    Stage,
    candidates,
    describe_free,
    free_runs,
    lowest,
    placement_of,
    ranked,
    request_error,
    room,
    span,
    unhealthy_core_mask,
)
from .topology import Shape

_SLOT = {r: i for i, r in enumerate(Resource)}
_NO_POOLS = (0,) * len(Resource)


def pod_error(requests: Sequence[Request]) -> str | None:
    """Why the kubelet cannot be relied on to give a pod's containers contiguous sets, or None.

    A container that asks for fewer IDs than earlier regular init containers of the pod left
    for reuse gets a random subset of them (Go map order). That is safe for one ID, and only
    while no later container has to take the random remainder: one that takes more than one
    of what is left, or grows a set from it, would get whatever the first pick left over."""
    left: dict[Resource, int] = {}  # how many IDs are left for reuse, per resource
    picked: dict[Resource, int] = {}  # how many were left when a container took one at random
    for r in requests:
        pool = left.get(r.resource, 0)
        if 1 < r.count < pool:
            return (
                f"a container asks for {r.count} {r.resource.value} after init containers of "
                f"the same pod left {pool} for reuse: the kubelet would give it {r.count} of "
                f"those {pool} at random, which need not be contiguous; ask for as many as the "
                "init containers, or for one"
            )
        before = picked.get(r.resource)
        if before is not None and (r.count > pool or r.count == pool > 1):
            return (
                f"a container asks for {r.count} {r.resource.value} after an earlier "
                f"container of the same pod took 1 of the {before} its init containers left: "
                "the kubelet picks that one at random, so the ones this container must reuse "
                "are left to chance and need not be contiguous; ask for all of them in one "
                "container listed before the ones that ask for one, or for one in each"
            )
        if r.stage is Stage.INIT:
            if r.count > pool:
                left[r.resource] = r.count
                picked.pop(r.resource, None)
        elif r.count < pool:
            left[r.resource] = pool - 1
            picked.setdefault(r.resource, pool)
        else:
            left[r.resource] = 0
            picked.pop(r.resource, None)
    return None


@dataclass(frozen=True)
class _Step:
    """One container, as the search sees it."""

    index: int  # its place in the pod's requests
    request: Request
    forced: bool  # it takes only IDs left for reuse: the kubelet picks them, not the plugin
    fresh: int  # how many cores it takes that no earlier container of the pod held
    outer: Request | None  # a later container whose set must contain this one's
    alone: bool  # it neither takes reused IDs nor leaves any for reuse


@lru_cache(maxsize=4096)
def _steps(shape: Shape, requests: tuple[Request, ...]) -> tuple[_Step, ...]:
    """The containers in the order the search places them (pod_error() has passed)."""
    steps, left = [], dict.fromkeys(Resource, 0)
    for i, r in enumerate(requests):
        pool = left[r.resource]
        unit = shape.cores_per_device if r.resource.whole_devices else 1
        outer = _outer(requests, i) if r.stage is Stage.INIT and r.count > pool else None
        fresh = max(r.count - pool, 0) * unit
        alone = pool == 0 and r.stage is not Stage.INIT
        steps.append(_Step(i, r, r.count <= pool, fresh, outer, alone))
        left[r.resource] = max(pool, r.count) if r.stage is Stage.INIT else max(pool - r.count, 0)
    # A container that neither reuses nor leaves IDs only has to be disjoint from the others,
    # whatever the order: those go first, largest first (in cores) as one at a time would, so
    # that small ones fill the gaps around large ones and a search fails early.
    steps.sort(key=lambda s: (0, -s.fresh, s.index) if s.alone else (1, 0, s.index))
    return tuple(steps)


def _outer(requests: tuple[Request, ...], i: int) -> Request | None:
    """The last container that grows a set from what init container `i` leaves, if any."""
    res, pool, outer = requests[i].resource, requests[i].count, None
    for r in requests[i + 1 :]:
        if r.resource is not res:
            continue
        if r.count > pool:
            outer = r
            if r.stage is not Stage.INIT:
                break
            pool = r.count
        elif r.stage is not Stage.INIT:
            break  # it takes the whole pool, or part of it at random: nothing grows after
    return outer


class _Search:
    """Depth-first over the containers' sets under the kubelet's reuse rules. `feasible`
    decides cheaply (no ranking) and memoised whether the rest of the pod still fits; the
    chosen path then takes, at each container, the best-ranked set that keeps it feasible."""

    def __init__(self, shape: Shape, steps: tuple[_Step, ...], blocked: int) -> None:
        self.shape, self.steps, self.blocked = shape, steps, blocked
        self.need = [sum(s.fresh for s in steps[k:]) for k in range(len(steps) + 1)]
        # Per step, how many containers of each request still to place have to be disjoint.
        self.alike = [Counter(s.request for s in steps[k:] if s.alone) for k in range(len(steps))]
        self.memo: dict[tuple[int, int, tuple[int, ...]], bool] = {}

    def _forced(self, step: _Step, pool: int) -> list[int]:
        r = step.request
        cand = lowest(self.shape, r.resource, pool, r.count)
        return [cand] if cand in candidates(self.shape, r) else []

    def _options(self, k: int, used: int, pools: tuple[int, ...]) -> list[int]:
        step = self.steps[k]
        pool = pools[_SLOT[step.request.resource]]
        if step.forced:
            return self._forced(step, pool)
        opts = self._free(step.request, used, pool)
        if step.outer is not None and opts:
            # Only where some free set of the container growing from it could go.
            reach = 0
            for o in self._free(step.outer, used, pool):
                reach |= o
            opts = [c for c in opts if not c & ~reach]
        return opts

    def _free(self, request: Request, used: int, pool: int) -> list[int]:
        """The valid sets of the request that include the pool and take no other used core."""
        other = used & ~pool
        return [c for c in candidates(self.shape, request) if not c & other and c & pool == pool]

    def _ranked(self, k: int, used: int, pools: tuple[int, ...]) -> Iterator[int]:
        step = self.steps[k]
        pool = pools[_SLOT[step.request.resource]]
        if step.forced:
            yield from self._forced(step, pool)
            return
        if step.outer is None:
            yield from ranked(self.shape, used & ~pool, step.request, pool)
            return
        # The container growing from this one takes all of its best set: where this one sits
        # inside that set leaves the same room, so it only packs onto few devices.
        own = sorted(self._free(step.request, used, pool), key=lambda c: (span(self.shape, c), c))
        seen = set()
        for o in ranked(self.shape, used & ~pool, step.outer, pool):
            for c in own:
                if c & o == c and c not in seen:
                    seen.add(c)
                    yield c

    def _after(
        self, k: int, used: int, pools: tuple[int, ...], c: int
    ) -> tuple[int, tuple[int, ...]]:
        step = self.steps[k]
        slot = _SLOT[step.request.resource]
        pool = pools[slot] | c if step.request.stage is Stage.INIT else pools[slot] & ~c
        return used | c, (*pools[:slot], pool, *pools[slot + 1 :])

    def feasible(self, k: int, used: int, pools: tuple[int, ...]) -> bool:
        if k == len(self.steps):
            return True
        key = (k, used, pools)
        known = self.memo.get(key)
        if known is None:
            known = (
                self.need[k] <= self.shape.cores - used.bit_count()
                and all(room(self.shape, r, used) >= n for r, n in self.alike[k].items())
                and all(self._has_room(j, used, pools) for j in range(k, len(self.steps)))
                and any(
                    self.feasible(k + 1, *self._after(k, used, pools, c))
                    for c in self._options(k, used, pools)
                )
            )
            self.memo[key] = known
        return known

    def _has_room(self, j: int, used: int, pools: tuple[int, ...]) -> bool:
        """Whether step j still has a free set, when its resource has nothing left for reuse
        now: all it will take is then placed from now on, so none of it is in use yet."""
        step = self.steps[j]
        if step.forced or step.alone or pools[_SLOT[step.request.resource]]:
            return True
        return any(not c & used for c in candidates(self.shape, step.request))

    def best(self) -> tuple[int, ...] | None:
        if not self.feasible(0, self.blocked, _NO_POOLS):
            return None
        used, pools, chosen = self.blocked, _NO_POOLS, {}
        for k, step in enumerate(self.steps):
            for c in self._ranked(k, used, pools):
                nxt = self._after(k, used, pools, c)
                if self.feasible(k + 1, *nxt):
                    break
            else:  # pragma: no cover - feasible(k) promised one
                raise AssertionError("a feasible step has no feasible set")
            chosen[step.index] = c
            used, pools = nxt
        return tuple(chosen[i] for i in range(len(self.steps)))


@lru_cache(maxsize=65536)
def plan(shape: Shape, requests: tuple[Request, ...], blocked: int) -> tuple[int, ...] | None:
    """Core masks of every container's set, in the order of `requests`, beside `blocked`
    cores; None when there is no fit. pod_error() and request_error() must have passed."""
    return _Search(shape, _steps(shape, requests), blocked).best()


def _why_not(shape: Shape, requests: tuple[Request, ...], blocked: int) -> str:
    for step in _steps(shape, requests):
        r = step.request
        if not step.forced and not any(not c & blocked for c in candidates(shape, r)):
            return describe_free(shape, blocked, r)
    free = [not blocked >> c & 1 for c in range(shape.cores)]
    return (
        f"no free contiguous sets for all {len(requests)} containers of the pod together on "
        f"{shape.name}: {sum(free)} of {shape.cores} cores free, longest free run "
        f"{max(free_runs(free), default=0)}"
    )


def choose_all(
    shape: Shape,
    requests: Sequence[Request],
    used_cores: int = 0,
    unhealthy_devices: int = 0,
) -> list[Placement]:
    """Sets for every container of a pod, in the order of `requests` (the kubelet's order:
    init containers, then app containers), each disjoint from the others but for the IDs it
    reuses, and each including what it must reuse. Raises NoFit with the reason."""
    error = pod_error(requests)
    for r in requests:
        error = error or request_error(shape, r)
    if error:
        raise NoFit(error)
    blocked = used_cores | unhealthy_core_mask(shape, unhealthy_devices)
    chosen = plan(shape, tuple(requests), blocked)
    if chosen is None:
        raise NoFit(_why_not(shape, tuple(requests), blocked))
    return [placement_of(shape, r.resource, c) for r, c in zip(requests, chosen, strict=True)]
