"""Allocation quality of the extender's choices (part 2 of bench_extender.py, not a test):
seeded random streams of arrivals and departures over a cluster of mixed Neuron nodes; the
share of cores in use when the first request is refused, ours against a baseline of
kube-scheduler's default spreading plus a first-fit extender, and an ablation."""

from __future__ import annotations

import random
import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from neuron_k8s.allocator import (
    Request,
    Resource,
    candidates,
    choose_all,
    mask,
    score,
)
from neuron_k8s.extender.fit import NodeClasses, evaluate
from neuron_k8s.extender.scoring import Demand, Supply, costs, scores
from neuron_k8s.topology import Shape, shape_for

CORE = Resource.NEURONCORE
DEV = Resource.NEURON

QUALITY_MIX = [
    ("inf2.48xlarge", 8),
    ("trn1.32xlarge", 8),
    ("inf2.24xlarge", 8),
    ("inf1.6xlarge", 6),
    ("inf2.xlarge", 6),
]
# (resource, count, weight): requests valid on at least one node type.
ARRIVALS = [
    (CORE, 1, 22),
    (CORE, 2, 18),
    (CORE, 4, 12),
    (CORE, 8, 6),
    (DEV, 1, 12),
    (DEV, 2, 6),
    (DEV, 4, 8),
    (DEV, 8, 5),
    (DEV, 12, 3),
    (DEV, 16, 3),
]
# Request mixes the streams draw from: whole-node requests make spreading lose badly; without
# them the contest is about keeping the right shapes free.
MIXES = {
    "mixed": ARRIVALS,
    "no-whole-node": [a for a in ARRIVALS if not (a[0] is DEV and a[1] >= 12)],
    "small": [a for a in ARRIVALS if a[0] is CORE or a[1] <= 2],
    "cores": [a for a in ARRIVALS if a[0] is CORE],
    "devices": [a for a in ARRIVALS if a[0] is DEV],
}
DEPARTURE_SHARE = 0.4
EXTENDER_WEIGHT = 5  # the chart's scheduler.extenderConfig.prioritizeWeight default


@dataclass
class SimNode:
    shape: Shape
    used: int = 0


@dataclass
class Running:
    node: int
    cores: int


Policy = Callable[[list[SimNode], tuple[Request, ...], random.Random], "tuple[int, int] | None"]


def first_fit(shape: Shape, requests: Sequence[Request], used: int) -> list[int] | None:
    """The lowest-index free valid set for each container in turn, like AWS's extender does.
    It enumerates the allocator's own valid sets, so only the choice differs from ours."""
    out = []
    for r in requests:
        for cand in candidates(shape, r):
            if not cand & used:
                out.append(cand)
                used |= cand
                break
        else:
            return None
    return out


def spread_score(node: SimNode, cores: int) -> float:
    """kube-scheduler's NodeResourcesFit LeastAllocated (0-100), with the pod's cpu and memory
    taken as proportional to its Neuron cores."""
    after = (node.used | cores).bit_count()
    return 100 * (1 - after / node.shape.cores)


def pick(best: list[tuple[float, int]], rng: random.Random) -> int:
    """kube-scheduler's choice: the highest total, ties at random."""
    top = max(t for t, _ in best)
    return rng.choice([i for t, i in best if t == top])


def ours() -> Policy:
    """The extender's own code: filter (node classes and verdicts; it records the pod's
    requests in the demand mix), prioritize (fragmentation-aware scores, times 10 times the
    weight, summed with kube-scheduler's spreading) and bind's set choice."""
    classes = NodeClasses()
    demand = Demand()

    def place(nodes: list[SimNode], requests: tuple[Request, ...], rng: random.Random):
        cls_of = [classes.intern(n.shape, n.used, 0, None) for n in nodes]
        verdicts = classes.verdicts(requests, set(cls_of))
        demand.record(requests)
        feasible = [i for i, c in enumerate(cls_of) if verdicts[c].reason is None]
        if not feasible:
            return None
        counts = Counter(cls_of[i] for i in feasible)
        supply = Supply(classes, Counter(cls_of))  # room is counted over every Neuron node
        score = scores(costs(classes, requests, counts, demand.weights(requests), supply))
        best = [
            (
                score[cls_of[i]] * 10 * EXTENDER_WEIGHT
                + spread_score(nodes[i], classes.choice(requests, cls_of[i])),
                i,
            )
            for i in feasible
        ]
        i = pick(best, rng)
        return i, classes.choice(requests, cls_of[i])

    return place


def utilisation_best_fit() -> Policy:
    """Ablation: prioritize by allocator.score (share of the node in use afterwards), the
    plain best fit this extender started with."""

    def place(nodes: list[SimNode], requests: tuple[Request, ...], rng: random.Random):
        best, sets = [], {}
        for i, node in enumerate(nodes):
            if evaluate(node.shape, requests, node.used, 0).reason is not None:
                continue
            placements = choose_all(node.shape, requests, node.used, 0)
            sets[i] = mask(c for p in placements for c in p.cores)
            total = score(node.shape, placements, node.used, 0) * 10 * EXTENDER_WEIGHT
            best.append((total + spread_score(node, sets[i]), i))
        if not best:
            return None
        i = pick(best, rng)
        return i, sets[i]

    return place


def baseline() -> Policy:
    """A first-fit filter and no prioritize: kube-scheduler spreads (least allocated), and the
    extender binds the lowest-index free set."""

    def place(nodes: list[SimNode], requests: tuple[Request, ...], rng: random.Random):
        best, sets = [], {}
        for i, node in enumerate(nodes):
            found = first_fit(node.shape, requests, node.used)
            if found is None:
                continue
            sets[i] = 0
            for s in found:
                sets[i] |= s
            best.append((spread_score(node, 0), i))
        if not best:
            return None
        i = pick(best, rng)
        return i, sets[i]

    return place


def simulate(
    seed: int, policy: Policy, arrivals: list[tuple[Resource, int, int]]
) -> tuple[float, int]:
    """The share of cores in use when the first request is refused, and how many pods were
    placed before it. The stream (arrivals and which pod leaves) depends on the seed only, so
    every policy sees the same pods until its first refusal."""
    stream = random.Random(seed)
    ties = random.Random(seed + 10_000)
    nodes = [SimNode(shape_for(t)) for t, count in QUALITY_MIX for _ in range(count)]
    total = sum(n.shape.cores for n in nodes)
    kinds = [(r, c) for r, c, _ in arrivals]
    weights = [w for _, _, w in arrivals]
    running: list[Running] = []
    placed = 0
    for _ in range(1_000_000):
        if running and stream.random() < DEPARTURE_SHARE:
            gone = running.pop(stream.randrange(len(running)))
            nodes[gone.node].used &= ~gone.cores
            continue
        resource, count = stream.choices(kinds, weights)[0]
        where = policy(nodes, (Request(resource, count),), ties)
        if where is None:
            return sum(n.used.bit_count() for n in nodes) / total, placed
        i, cores = where
        assert not nodes[i].used & cores
        nodes[i].used |= cores
        running.append(Running(i, cores))
        placed += 1
    raise RuntimeError("no refusal")


def bench_quality(seeds: int) -> bool:
    cluster = ", ".join(f"{c} x {t}" for t, c in QUALITY_MIX)
    total = sum(shape_for(t).cores * c for t, c in QUALITY_MIX)
    print()
    print("== allocation quality: share of cores in use at the first refused request ==")
    print(f"   cluster: {cluster} ({total} cores)")
    print("   request mixes (resource count:weight):")
    for name, arrivals in MIXES.items():
        kinds = ", ".join(f"{c}{'c' if r is CORE else 'd'}:{w}" for r, c, w in arrivals)
        print(f"     {name:<14} {kinds}   (c = NeuronCores, d = whole devices)")
    print(
        f"   departures {DEPARTURE_SHARE:.0%} of events. ours = the extender's filter, prioritize"
        f" (x10 x weight {EXTENDER_WEIGHT}, summed"
    )
    print("   with spreading) and set choice; base = spreading + a first-fit extender (AWS-like);")
    print("   util = ablation, prioritize by allocator.score (utilisation best fit)")
    header = " ".join(f"{name:>17}" for name in MIXES)
    print(f"{'seed':>5} {header}")
    print(f"{'':>5} " + " ".join(f"{'ours/base':>17}" for _ in MIXES))
    rows: dict[str, list[tuple[float, float, float, int, int]]] = {name: [] for name in MIXES}
    for seed in range(seeds):
        cells = []
        for name, arrivals in MIXES.items():
            o, placed_o = simulate(seed, ours(), arrivals)
            b, placed_b = simulate(seed, baseline(), arrivals)
            u, _ = simulate(seed, utilisation_best_fit(), arrivals)
            rows[name].append((o, b, u, placed_o, placed_b))
            cells.append(f"{o:>6.1%}/{b:>5.1%} {100 * (o - b):+5.1f}")
        print(f"{seed:>5} " + " ".join(f"{c:>17}" for c in cells), flush=True)
    ok = True
    print(
        f"{'mix':<14} {'ours':>6} {'base':>6} {'mean margin':>12} {'min margin':>11} "
        f"{'seeds lost':>11} {'pods placed':>12} | {'util':>6} {'util lost':>10}"
    )
    notes = []
    for name, results in rows.items():
        margins = [r[0] - r[1] for r in results]
        lost = [seed for seed, m in enumerate(margins) if m < 0]
        ok &= not lost
        for seed in lost:
            o, b, _, po, pb = results[seed]
            notes.append(
                f"   {name} seed {seed}: ours {o:.1%} vs {b:.1%} of cores in use, "
                f"after placing {po} pods vs {pb}"
            )
        placed = (
            f"{statistics.mean(r[3] for r in results):.0f}/"
            f"{statistics.mean(r[4] for r in results):.0f}"
        )
        print(
            f"{name:<14} {statistics.mean(r[0] for r in results):>6.1%} "
            f"{statistics.mean(r[1] for r in results):>6.1%} "
            f"{100 * statistics.mean(margins):>+11.1f}p {100 * min(margins):>+10.1f}p "
            f"{len(lost):>5} of {len(results):<3} {placed:>12} | "
            f"{statistics.mean(r[2] for r in results):>6.1%} "
            f"{sum(r[2] < r[1] for r in results):>4} of {len(results)}"
        )
    print("   (pods placed: mean arrivals placed before the first refusal, ours/base)")
    if notes:
        print("seeds where ours ends with a smaller share of cores in use:")
        print("\n".join(notes))
    return ok
