"""filter, prioritize and bind over the cluster state, and the watches that feed it."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from itertools import compress
from typing import Any

from ..allocator import Request
from ..kube import KubeClient, Reflector
from ..logs import get_logger
from ..pods import BadPod, container_requests
from . import scoring
from .binding import Binder, BindOutcome
from .caches import KnownList, KnownLists, PodCache, trimmed, watched_node, watched_pod
from .events import RecordEvents
from .fit import FITS, NodeClasses, Verdict, evaluate
from .pending import PendingPods
from .protocol import BindingArgs, ExtenderArgs, filter_result
from .records import UNKNOWN_NODE, read_node
from .requeue import Requeuer
from .state import ClusterState

log = get_logger("extender")

# Pseudo-classes of _judge, beside the real ones (>= 0) and None (a node never seen).
FITS_ANYWHERE = -1
OWN_NODE = -2
UNKNOWN = Verdict(UNKNOWN_NODE, True)


@dataclass(frozen=True)
class Judged:
    found: list[int | None]  # the class of each candidate, in order
    verdicts: dict[int | None, Verdict]  # per class
    requests: tuple[Request, ...]  # the pod's, () when it asks for no Neuron resource
    classes: NodeClasses


class Extender:
    def __init__(
        self,
        client: KubeClient,
        state: ClusterState | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
        requeue: Requeuer | None = None,
        scheduler_name: str | None = None,
        list_timeout: float | None = None,
    ) -> None:
        self.client = client
        self.list_timeout = list_timeout  # each page of a list; None: the client's timeout
        self.events = RecordEvents(client)
        self.state = state or ClusterState()
        self.requeue = requeue
        self._recent = PodCache()
        self.binder = Binder(client, self.state, self._recent, clock_ns, scheduler_name)
        self._known = {"filter": KnownLists(), "prioritize": KnownLists()}
        self.demand = scoring.Demand()
        self._reflectors: list[Reflector] = []
        # The pod watch passes through the count of pending Neuron pods (metrics).
        self.pending = PendingPods(self.state.apply_pod, self.state.replace_pods)

    # --- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        if self.requeue is not None:
            self.state.on_room = self.requeue.room
            self.requeue.start()
        self.state.records.on_rejected = self.events.report
        self.events.start()
        self._reflectors = [
            Reflector(
                self.client,
                "/api/v1/nodes",
                None,
                self.state.apply_node,
                self.state.replace_nodes,
                name="nodes",
                list_timeout=self.list_timeout,
                transform=partial(watched_node, instance_type_label=self.state.instance_type_label),
            ),
            Reflector(
                self.client,
                "/api/v1/pods",
                None,
                self.pending.apply,
                self.pending.replace,
                name="pods",
                list_timeout=self.list_timeout,
                transform=watched_pod,
            ),
        ]
        for r in self._reflectors:
            r.start()

    def stop(self) -> None:
        for r in self._reflectors:
            r.stop()
        self.events.stop()
        if self.requeue is not None:
            self.requeue.stop()

    @property
    def ready(self) -> bool:
        """Both views have been listed once: before that, every node would look empty."""
        return bool(self._reflectors) and all(r.synced.is_set() for r in self._reflectors)

    def wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        return all(r.synced.wait(max(deadline - time.monotonic(), 0)) for r in self._reflectors)

    # --- filter and prioritize ------------------------------------------------------------
    def _judge(self, args: ExtenderArgs, verb: str) -> Judged | str:
        """The class of each candidate (in order) and the verdict of each class; or the reason
        the pod itself cannot be served. The per-node work is a C-level map over a dict; the
        Python-level work is per distinct class, of which there are few."""
        self._recent.put(args.pod_key, trimmed(args.pod))
        try:
            creqs = container_requests(args.pod)
        except BadPod as err:
            return f"the pod cannot be served by the Neuron extender: {err}"
        names = args.names
        node_class, classes = self.state.index
        if not creqs:
            return Judged([FITS_ANYWHERE] * len(names), {FITS_ANYWHERE: FITS}, (), classes)
        requests = tuple(c.request for c in creqs)
        found = self._classes_of(args, node_class, classes, verb)
        if args.node_names is None and args.node_items is not None and None in found:
            # nodeCacheCapable: false passes the objects: judge nodes not watched yet by them.
            for i, node in enumerate(args.node_items):
                if found[i] is None:
                    found[i] = self._class_of(node, classes)
        unique = set(found)
        unique.discard(None)
        verdicts: dict[int | None, Verdict] = dict(classes.verdicts(requests, unique))  # type: ignore[arg-type]
        verdicts[None] = UNKNOWN
        own = self.state.own_use(args.pod_uid) if args.pod_uid else None
        if own is not None and own[0] in node_class:
            # The pod already holds cores there (a retried bind): not against itself.
            view = self.state.nodes.get(own[0])
            if view is not None and view.shape is not None:
                used = self.state.used_without(own[0], args.pod_uid)
                verdicts[OWN_NODE] = evaluate(view.shape, requests, used, view.unhealthy)
                found = [OWN_NODE if n == own[0] else c for n, c in zip(names, found, strict=True)]
        return Judged(found, verdicts, requests, classes)

    def _classes_of(
        self, args: ExtenderArgs, node_class: dict[str, int], classes: NodeClasses, verb: str
    ) -> list[int | None]:
        """The class of each candidate. For a candidate list seen recently (the same raw
        NodeNames), the classes worked out then, updated for the nodes changed since: looking
        5,000 names up in a dict costs more than the rest of filter together."""
        key = args.names_key
        if key is None:
            return list(map(node_class.get, args.names))
        # Per verb: prioritize gets the nodes filter passed, a list of its own that changes
        # more often, and must not push filter's list out.
        lists = self._known[verb]
        known = lists.get(key)
        if known is not None and known.classes is classes:
            delta = self.state.changed_since(known.version)
            if delta is not None:
                version, changed = delta
                if not changed:
                    return known.found
                found = list(known.found)
                positions = known.positions()
                for node in changed:
                    i = positions.get(node)
                    if i is not None:
                        found[i] = node_class.get(node)
                lists.put(key, KnownList(found, version, classes, known.names, positions))
                return found
        version = self.state.version  # read first: a change during the lookups is redone
        found = list(map(node_class.get, args.names))
        if len(set(args.names)) == len(args.names):
            lists.put(key, KnownList(found, version, classes, args.names))
        return found

    def _class_of(self, node: dict[str, Any], classes: NodeClasses) -> int:
        """The class of a node object the watch has not shown yet, with whatever usage pods
        already record on it."""
        shape, problem, unhealthy = read_node(node, self.state.instance_type_label)
        used = self.state.used_without(node["metadata"]["name"], "") if shape else 0
        if shape is not None:
            used &= (1 << shape.cores) - 1  # records checked for form only (node not seen yet)
        return classes.intern(shape, used, unhealthy, problem)

    def filter(self, args: ExtenderArgs) -> dict[str, Any]:
        judged = self._judge(args, "filter")
        names = args.names
        if isinstance(judged, str):
            return filter_result(args, [], {}, dict.fromkeys(names, judged))
        found, verdicts = judged.found, judged.verdicts
        if judged.requests:
            self.demand.record(judged.requests)
        fit = {c for c, v in verdicts.items() if v.reason is None}
        if fit.issuperset(found):
            return filter_result(args, list(names), {}, {})
        # compress/filter/map keep the per-node loops in C: the per-class work is done above.
        passed = list(compress(names, map(fit.__contains__, found)))
        out: list[dict[str, str]] = []
        for want in (False, True):
            reason = {
                c: v.reason
                for c, v in verdicts.items()
                if v.reason is not None and v.unresolvable is want
            }
            if not reason:
                out.append({})
                continue
            hit = reason.__contains__
            out.append(
                dict(
                    zip(
                        compress(names, map(hit, found)),
                        map(reason.__getitem__, filter(hit, found)),
                        strict=True,
                    )
                )
            )
        if not passed and out[0] and self.requeue is not None:
            self.requeue.turned_away()  # some node may gain room: see requeue.py
        return filter_result(args, passed, out[0], out[1])

    def prioritize(self, args: ExtenderArgs) -> tuple[list[str], list[int]]:
        """Hosts and their scores, in the order given."""
        judged = self._judge(args, "prioritize")
        names = args.names
        if isinstance(judged, str):
            return names, [0] * len(names)
        found, verdicts, requests = judged.found, judged.verdicts, judged.requests
        score: dict[int | None, int] = dict.fromkeys(verdicts, 0)
        if requests:
            fit = {c for c, v in verdicts.items() if v.reason is None and c is not None and c >= 0}
            counts: Counter[int] = Counter(c for c in found if c in fit and c is not None)
            if self.demand.empty:
                # Just started: the pods running now are the best guess at the mix.
                self.demand.record(
                    Request(a.placement.resource, len(a.placement.ids))
                    for use in self.state.pod_uses().values()
                    for a in use.allocations
                )
            weights = self.demand.weights(requests)
            supply = self.state.supply()
            if supply.classes is not judged.classes:
                # The class table was rebuilt meanwhile and its ids mean other things: count
                # room over the candidates alone for this call.
                supply = scoring.Supply(judged.classes, counts)
            cost = scoring.costs(judged.classes, requests, counts, weights, supply)
            for cls, value in scoring.scores(cost).items():
                score[cls] = value
            if verdicts.get(OWN_NODE, UNKNOWN).reason is None:
                score[OWN_NODE] = scoring.BEST  # it holds its cores there already: no cost
        return names, list(map(score.__getitem__, found))

    # --- bind -----------------------------------------------------------------------------
    def bind(self, args: BindingArgs) -> BindOutcome:
        return self.binder.bind(args)
