"""Whether, and how well, a pod fits one node: the per-node work behind filter and prioritize,
memoised so that thousands of nodes in a few shapes and usages cost one dict lookup each.

Reasons are worded per instance type and request, not per node's exact usage: kube-scheduler
groups identical reasons in the pod's FailedScheduling event ("0/5000 nodes are available:
4990 ..."), so per-node counts would turn it into thousands of distinct lines.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

from ..allocator import (
    NoFit,
    Placement,
    Request,
    candidates,
    choose_all,
    placement_of,
    request_error,
    score,
    unhealthy_core_mask,
)
from ..topology import Shape


@dataclass(frozen=True, slots=True)
class Verdict:
    reason: str | None  # None: the pod fits
    unresolvable: bool  # no eviction on the node would make it fit
    score: int  # 0-10, meaningful when it fits


def describe(requests: tuple[Request, ...]) -> str:
    parts = []
    for r in requests:
        if r.resource.whole_devices:
            parts.append(f"{r.count} Neuron device{'s' if r.count != 1 else ''}")
        else:
            parts.append(f"{r.count} NeuronCore{'s' if r.count != 1 else ''}")
    return " + ".join(parts)


def _placements(
    shape: Shape, requests: tuple[Request, ...], used: int, unhealthy: int
) -> list[Placement] | None:
    """Sets that bind could give, or None when bind would find none. For one container (the
    common case) any free valid set will do: bind's choice exists exactly when one does, and
    the score depends only on how many cores the set takes, not on which. That saves ranking
    every candidate by the room it leaves, the costly part, for each new node usage. Several
    containers go through choose_all, as bind does, since its greedy order decides the fit."""
    if len(requests) == 1:
        r = requests[0]
        blocked = used | unhealthy_core_mask(shape, unhealthy)
        for cand in candidates(shape, r):
            if not cand & blocked:
                return [placement_of(shape, r.resource, cand)]
        return None
    try:
        return choose_all(shape, requests, used, unhealthy)
    except NoFit:
        return None


def evaluate(shape: Shape, requests: tuple[Request, ...], used: int, unhealthy: int) -> Verdict:
    """The verdict for a pod's requests on a node of `shape` with `used` cores (mask) in use and
    `unhealthy` devices (mask)."""
    for r in requests:
        error = request_error(shape, r)
        if error:
            return Verdict(error, True, 0)
    placements = _placements(shape, requests, used, unhealthy)
    if placements is None:
        return _no_fit(shape, requests, used, unhealthy)
    return Verdict(None, False, score(shape, placements, used, unhealthy))


def _fits(shape: Shape, requests: tuple[Request, ...], used: int, unhealthy: int) -> bool:
    return _placements(shape, requests, used, unhealthy) is not None


def _no_fit(shape: Shape, requests: tuple[Request, ...], used: int, unhealthy: int) -> Verdict:
    want = describe(requests)
    if not _fits(shape, requests, 0, 0):
        return Verdict(
            f"the pod's containers together ask for {want}, which cannot all be placed "
            f"contiguously on an empty {shape.name}",
            True,
            0,
        )
    if unhealthy and not _fits(shape, requests, 0, unhealthy):
        bad = (unhealthy & ((1 << shape.devices) - 1)).bit_count()
        return Verdict(
            f"{bad} of {shape.devices} Neuron devices of this {shape.name} are unhealthy; the "
            f"healthy ones cannot hold {want}",
            True,
            0,
        )
    return Verdict(
        f"not enough contiguous free Neuron capacity on this {shape.name} for {want} "
        "(in use by other pods)",
        False,
        0,
    )


class NodeClasses:
    """Node classes and the verdicts of each. A class is an int interned from what decides a
    verdict, (shape, used, unhealthy) or the reason a node has no usable shape: nodes of one
    class share every verdict, and hashing an int is far cheaper than hashing the Shape
    dataclass. Ids index a list, so going back from a class to its key costs nothing. The
    state replaces the whole object when it has grown too large, so ids are never reused
    within one instance."""

    def __init__(self, max_verdicts: int = 500_000) -> None:
        self._lock = threading.Lock()
        self._ids: dict[tuple[Shape | None, int, int, str | None], int] = {}
        self._keys: list[tuple[Shape | None, int, int, str | None]] = []
        self._verdicts: dict[tuple[Request, ...], dict[int, Verdict]] = {}
        self._entries = 0
        self._max_verdicts = max_verdicts

    def __len__(self) -> int:
        return len(self._keys)

    def intern(self, shape: Shape | None, used: int, unhealthy: int, problem: str | None) -> int:
        key = (shape, used, unhealthy, problem)
        cls = self._ids.get(key)
        if cls is None:
            with self._lock:
                cls = self._ids.get(key)
                if cls is None:
                    cls = self._ids[key] = len(self._keys)
                    self._keys.append(key)
        return cls

    def verdict_of(self, cls: int, requests: tuple[Request, ...]) -> Verdict:
        shape, used, unhealthy, problem = self._keys[cls]
        if shape is None:
            return Verdict(problem, True, 0)
        return evaluate(shape, requests, used, unhealthy)

    def verdicts(self, requests: tuple[Request, ...], classes: Iterable[int]) -> dict[int, Verdict]:
        """The verdict of each class for these requests, memoised."""
        table = self._verdicts.get(requests)
        if table is None:
            with self._lock:
                if self._entries >= self._max_verdicts:
                    self._verdicts.clear()  # only a memo: dropping it costs recomputation
                    self._entries = 0
                table = self._verdicts.setdefault(requests, {})
        out = {}
        for cls in classes:
            v = table.get(cls)
            if v is None:
                v = table[cls] = self.verdict_of(cls, requests)
                self._entries += 1  # approximate under races; it only bounds memory
            out[cls] = v
        return out
