"""prioritize: fragmentation-aware best fit.

Placing a pod takes room away from the pods that come later: sets of some request kinds that
were free on the node are not any more. Which room matters depends on what the cluster is
asked for and on how much of it is left. Taking the last free run of 2 devices, in a cluster
whose other free capacity is on trn1.32xlarge nodes (where 2 devices is not a valid request),
hurts more than taking one of many free single cores. So the cost of placing the pod on a node
is, summed over the request kinds seen recently,

    weight(kind) * (pods of that kind the node could take before - after) / (pods of that kind
    all candidate nodes could take)

and the cheapest node wins. Plain best fit falls out of it (a pod that fills a hole exactly
destroys nothing else), and so does keeping scarce shapes free. The idea is the one of
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
EMPTY_NODE_WEIGHT = 0.05  # beside the request kinds' weights, which sum to 1
TIE_BREAK = 1e-6


class Demand:
    """Decayed counts of the container requests filter has seen: the workload's mix."""

    def __init__(self, decay: float = 0.995, max_kinds: int = 8) -> None:
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
                self._weights[r] = self._weights.get(r, 0.0) + 1.0

    def weights(self, requests: Iterable[Request]) -> dict[Request, float]:
        """The most asked-for kinds, and the pod's own, as shares summing to 1."""
        with self._lock:
            top = dict(sorted(self._weights.items(), key=lambda kv: -kv[1])[: self._max_kinds])
        for r in requests:
            top.setdefault(r, self._weights.get(r, 1.0))
        total = sum(top.values())
        return {k: w / total for k, w in top.items()}


def costs(
    classes: NodeClasses,
    requests: tuple[Request, ...],
    counts: Mapping[int, int],
    weights: Mapping[Request, float],
) -> dict[int, float]:
    """The cost of placing the pod on a node of each class; `counts` says how many candidate
    nodes are of each class (all of them fit the pod)."""
    kinds = [(classes.kind(k), w) for k, w in weights.items()]
    total = {kid: sum(n * classes.room(cls, kid) for cls, n in counts.items()) for kid, _ in kinds}
    empty = sum(n for cls, n in counts.items() if classes.is_empty(cls))
    out = {}
    for cls in counts:
        cost = 0.0
        for kid, w in kinds:
            lost = classes.room(cls, kid) - classes.room_after(requests, cls, kid)
            if lost:
                cost += w * lost / max(total[kid], 1)
        if classes.is_empty(cls):
            # A hedge for kinds not seen yet, such as whole nodes: keep empty nodes empty.
            cost += EMPTY_NODE_WEIGHT / empty
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
