"""prioritize: fragmentation-aware best fit.

Placing a pod takes room away from the pods that come later: sets of some request kinds that
were free on the node are not any more. Which room matters depends on what the cluster is
asked for and on how much of it is left. Taking the last free run of 2 devices, in a cluster
whose other free capacity is on trn1.32xlarge nodes (where 2 devices is not a valid request),
hurts more than taking one of many free single cores. So the cost of placing the pod on a node
is, summed over the request kinds seen recently,

    weight(kind) * (pods of that kind the node could take before - after) / (pods of that kind
    all the cluster's Neuron nodes could take)

and the cheapest node wins. Plain best fit falls out of it (a pod that fills a hole exactly
destroys nothing else; among equal costs the node left fullest wins), and so does keeping
scarce shapes free. The room of a kind is counted over every Neuron node, not only the pod's
candidates: an 8-device pod can go only to trn1.32xlarge or inf2.48xlarge, but the 2-device
pods it competes with also fit on every inf2.24xlarge, so their room is not scarce even when
the candidates hold little of it. The mix keeps up to 16 kinds: the rare ones, such as whole
nodes, are the requests refused first, and dropping them from a shorter list let pods spend
the last nodes that could serve them. There is no extra cost for taking an empty node: the
tie-break above keeps empty nodes for kinds not seen yet, and any fixed premium on them
weighs against the measured mix (the benchmark lost seeds with one). The idea is the one of
fragmentation gradient descent for GPU sharing (Weng et al., USENIX ATC 2023): measure
fragmentation against the workload's own request mix. The allocation benchmark
(plugin-src/bench/bench_extender.py) shows why utilisation-based best fit is not enough: it
packs whichever node type it starts on and can exhaust the only nodes that serve some sizes.

Scores: the cheapest nodes get 10, the others 0 to 7 by cost. kube-scheduler adds its own
scores (spreading, up to 100 points) to ours times 10 times the extender's weight (5 in the
chart), so a gap of 3 levels (150 points) keeps its spreading from overturning our choice,
while it still breaks ties among equally good nodes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping

from ..allocator import Request
from .fit import NodeClasses

BEST = 10
OTHERS_MAX = 7
TIE_BREAK = 1e-6


class Demand:
    """Decayed counts of the container requests filter has seen: the workload's mix."""

    def __init__(self, decay: float = 0.995, max_kinds: int = 16) -> None:
        self._lock = threading.Lock()
        self._weights: dict[Request, float] = {}
        self._decay = decay
        self._max_kinds = max_kinds

    @property
    def empty(self) -> bool:
        return not self._weights

    def record(self, requests: Iterable[Request]) -> None:
        with self._lock:
            for k in list(self._weights):
                w = self._weights[k] * self._decay
                if w < 1e-3:
                    del self._weights[k]  # a kind not asked for in a long while
                else:
                    self._weights[k] = w
            for r in requests:
                self._weights[r.kind] = self._weights.get(r.kind, 0.0) + 1.0

    def weights(self, requests: Iterable[Request]) -> dict[Request, float]:
        """The most asked-for kinds, and the pod's own, as shares summing to 1."""
        with self._lock:
            top = dict(sorted(self._weights.items(), key=lambda kv: -kv[1])[: self._max_kinds])
        for r in requests:
            top.setdefault(r.kind, self._weights.get(r.kind, 1.0))
        total = sum(top.values())
        return {k: w / total for k, w in top.items()}


class Supply:
    """How many of the cluster's Neuron nodes are of each class, and the room they have for
    each request kind, worked out once per kind: one snapshot serves every prioritize call
    until a node changes class."""

    def __init__(self, classes: NodeClasses, counts: Mapping[int, int]) -> None:
        self.classes = classes
        self.counts = counts
        self._room: dict[int, int] = {}

    def room(self, kid: int) -> int:
        n = self._room.get(kid)
        if n is None:
            room = self.classes.room
            n = self._room[kid] = sum(k * room(cls, kid) for cls, k in self.counts.items())
        return n


def costs(
    classes: NodeClasses,
    requests: tuple[Request, ...],
    counts: Mapping[int, int],
    weights: Mapping[Request, float],
    supply: Supply,
) -> dict[int, float]:
    """The cost of placing the pod on a node of each class; `counts` says how many candidate
    nodes are of each class (all of them fit the pod). Candidates missing from `supply`
    (nodes passed as objects before the watch showed them) add no room: for that moment, the
    kinds they serve look a little scarcer than they are."""
    kinds = [(classes.kind(k), w) for k, w in weights.items()]
    total = {kid: max(supply.room(kid), 1) for kid, _ in kinds}
    out = {}
    for cls in counts:
        cost = 0.0
        for kid, w in kinds:
            lost = classes.room(cls, kid) - classes.room_after(requests, cls, kid)
            if lost:
                cost += w * lost / total[kid]
        # Ties (equal room lost) go to the node left fullest: plain best fit.
        cost += TIE_BREAK * classes.free_share_after(requests, cls)
        out[cls] = cost
    return out


def scores(cost: Mapping[int, float]) -> dict[int, int]:
    """BEST for the cheapest classes, 0..OTHERS_MAX for the others by cost."""
    if not cost:
        return {}
    lo, hi = min(cost.values()), max(cost.values())
    tie = 1e-9 * max(abs(lo), 1e-12)
    out = {}
    for cls, c in cost.items():
        if c - lo <= tie:
            out[cls] = BEST
        else:
            out[cls] = round(OTHERS_MAX * (hi - c) / (hi - lo))
    return out
