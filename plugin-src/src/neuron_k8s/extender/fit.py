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
from typing import Any

from ..allocator import (
    NoFit,
    Request,
    candidates,
    choose_all,
    mask,
    pod_error,
    request_error,
    unhealthy_core_mask,
)
from ..coresets import room
from ..topology import Shape


@dataclass(frozen=True, slots=True)
class Verdict:
    reason: str | None  # None: the pod fits
    unresolvable: bool = False  # no eviction on the node would make it fit


FITS = Verdict(None)


def describe(requests: tuple[Request, ...]) -> str:
    parts = []
    for r in requests:
        if r.resource.whole_devices:
            parts.append(f"{r.count} Neuron device{'s' if r.count != 1 else ''}")
        else:
            parts.append(f"{r.count} NeuronCore{'s' if r.count != 1 else ''}")
    return " + ".join(parts)


def _fits(shape: Shape, requests: tuple[Request, ...], used: int, unhealthy: int) -> bool:
    """Whether bind would find sets. For one container (the common case) any free valid set
    will do: bind's choice exists exactly when one does, and testing for one saves ranking
    every candidate by the room it leaves, the costly part, for each new node usage. Several
    containers go through choose_all, as bind does, so that filter and bind agree on the fit."""
    if len(requests) == 1:
        blocked = used | unhealthy_core_mask(shape, unhealthy)
        return any(not cand & blocked for cand in candidates(shape, requests[0]))
    try:
        choose_all(shape, requests, used, unhealthy)
    except NoFit:
        return False
    return True


def evaluate(shape: Shape, requests: tuple[Request, ...], used: int, unhealthy: int) -> Verdict:
    """The verdict for a pod's requests on a node of `shape` with `used` cores (mask) in use and
    `unhealthy` devices (mask)."""
    for r in requests:
        error = request_error(shape, r)
        if error:
            return Verdict(error, True)
    error = pod_error(requests)
    if error:
        return Verdict(error, True)
    if not _fits(shape, requests, used, unhealthy):
        return _no_fit(shape, requests, used, unhealthy)
    return FITS


def _no_fit(shape: Shape, requests: tuple[Request, ...], used: int, unhealthy: int) -> Verdict:
    want = describe(requests)
    if not _fits(shape, requests, 0, 0):
        return Verdict(
            f"the pod's containers together ask for {want}, which cannot all be placed "
            f"contiguously on an empty {shape.name}",
            True,
        )
    if unhealthy and not _fits(shape, requests, 0, unhealthy):
        bad = (unhealthy & ((1 << shape.devices) - 1)).bit_count()
        return Verdict(
            f"{bad} of {shape.devices} Neuron devices of this {shape.name} are unhealthy; the "
            f"healthy ones cannot hold {want}",
            True,
        )
    # Short: this is the reason of most failed nodes in a busy cluster, thousands per answer.
    return Verdict(f"no free contiguous set of {want} on {shape.name}")


class NodeClasses:
    """Node classes and what is memoised per class. A class is an int interned from what
    decides a verdict, (shape, used, unhealthy) or the reason a node has no usable shape:
    nodes of one class share every verdict, choice and score, and hashing an int is far
    cheaper than hashing the Shape dataclass. Ids index a list, so going back from a class to
    its key costs nothing. The state replaces the whole object when it has grown too large,
    so ids are never reused within one instance. Request kinds are interned the same way."""

    def __init__(self, max_entries: int = 500_000) -> None:
        self._lock = threading.Lock()
        self._ids: dict[tuple[Shape | None, int, int, str | None], int] = {}
        self._keys: list[tuple[Shape | None, int, int, str | None]] = []
        self._kinds: dict[Request, int] = {}
        self._kind_list: list[Request] = []
        self._verdicts: dict[tuple[Request, ...], dict[int, Verdict]] = {}
        self._choices: dict[tuple[Request, ...], dict[int, int]] = {}
        self._room_after: dict[tuple[Request, ...], dict[tuple[int, int], int]] = {}
        self._room: dict[tuple[int, int], int] = {}
        self._entries = 0
        self._max_entries = max_entries

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

    def key(self, cls: int) -> tuple[Shape | None, int, int, str | None]:
        return self._keys[cls]

    def kind(self, request: Request) -> int:
        kid = self._kinds.get(request)
        if kid is None:
            with self._lock:
                kid = self._kinds.get(request)
                if kid is None:
                    kid = self._kinds[request] = len(self._kind_list)
                    self._kind_list.append(request)
        return kid

    def _table(self, memo: dict[tuple[Request, ...], Any], requests: tuple[Request, ...]) -> Any:
        table = memo.get(requests)
        if table is None:
            with self._lock:
                if self._entries >= self._max_entries:
                    # Only memos: dropping them costs recomputation.
                    for m in (self._verdicts, self._choices, self._room_after):
                        m.clear()
                    self._room.clear()
                    self._entries = 0
                table = memo.setdefault(requests, {})
        return table

    def verdict_of(self, cls: int, requests: tuple[Request, ...]) -> Verdict:
        shape, used, unhealthy, problem = self._keys[cls]
        if shape is None:
            return Verdict(problem, True)
        return evaluate(shape, requests, used, unhealthy)

    def verdicts(self, requests: tuple[Request, ...], classes: Iterable[int]) -> dict[int, Verdict]:
        """The verdict of each class for these requests, memoised."""
        table = self._table(self._verdicts, requests)
        out = {}
        for cls in classes:
            v = table.get(cls)
            if v is None:
                v = table[cls] = self.verdict_of(cls, requests)
                self._entries += 1  # approximate under races; it only bounds memory
            out[cls] = v
        return out

    def _blocked(self, cls: int) -> tuple[Shape, int]:
        shape, used, unhealthy, _ = self._keys[cls]
        assert shape is not None
        return shape, used | unhealthy_core_mask(shape, unhealthy)

    def choice(self, requests: tuple[Request, ...], cls: int) -> int:
        """Core mask of the sets bind would choose on a node of this class (the class fits)."""
        table = self._table(self._choices, requests)
        chosen = table.get(cls)
        if chosen is None:
            shape, used, unhealthy, _ = self._keys[cls]
            assert shape is not None
            chosen = 0
            for p in choose_all(shape, requests, used, unhealthy):
                chosen |= mask(p.cores)
            table[cls] = chosen
            self._entries += 1
        return int(chosen)

    def room(self, cls: int, kid: int) -> int:
        """How many pods of kind `kid` a node of this class can still take."""
        key = (cls, kid)
        n = self._room.get(key)
        if n is None:
            shape, blocked = self._blocked(cls)
            n = self._room[key] = room(shape, self._kind_list[kid], blocked)
            self._entries += 1
        return n

    def free_share_after(self, requests: tuple[Request, ...], cls: int) -> float:
        """The share of the node's healthy cores still free once the pod is placed."""
        shape, blocked = self._blocked(cls)
        healthy = shape.cores - unhealthy_core_mask(shape, self._keys[cls][2]).bit_count()
        after = (blocked | self.choice(requests, cls)).bit_count()
        return (shape.cores - after) / healthy if healthy else 0.0

    def room_after(self, requests: tuple[Request, ...], cls: int, kid: int) -> int:
        """The same, once the pod has been placed where bind would place it."""
        table = self._table(self._room_after, requests)
        key = (cls, kid)
        n = table.get(key)
        if n is None:
            shape, blocked = self._blocked(cls)
            n = table[key] = room(shape, self._kind_list[kid], blocked | self.choice(requests, cls))
            self._entries += 1
        return int(n)
