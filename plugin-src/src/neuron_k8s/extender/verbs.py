"""filter, prioritize and bind over the cluster state, and the watches that feed it."""

from __future__ import annotations

import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from itertools import compress
from typing import Any

from ..allocator import NoFit, Request
from ..kube import ApiError, KubeClient, Reflector
from ..logs import get_logger
from ..pods import (
    AWS_NEURON_IDS,
    BadPod,
    allocation_annotations,
    container_requests,
    merge_patch,
    read_allocation,
)
from . import scoring
from .fit import FITS, NodeClasses, Verdict, evaluate
from .protocol import BindingArgs, ExtenderArgs, filter_result
from .state import UNKNOWN_NODE, ClusterState, Reservation, Unavailable, read_node

log = get_logger("extender")

# The keys bind writes, so that a failed bind can remove exactly these and nothing else.
_WRITTEN_KEYS = tuple(allocation_annotations("", [], 0))

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


@dataclass(frozen=True)
class BindOutcome:
    error: str  # "" on success
    outcome: str  # for metrics: bound, bound_plain, already_bound, no_fit, bad_pod, api_error


class _PodCache:
    """The pods filter saw recently: bind's arguments carry only the pod's name, and the pod
    was in the filter call of the same scheduling cycle, so this saves a GET per bind."""

    def __init__(self, size: int = 4096) -> None:
        self._lock = threading.Lock()
        self._pods: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._size = size

    def put(self, key: str, pod: dict[str, Any]) -> None:
        with self._lock:
            self._pods[key] = pod
            self._pods.move_to_end(key)
            while len(self._pods) > self._size:
                self._pods.popitem(last=False)

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            return self._pods.get(key)


class _Known:
    """The classes of one candidate list as of a state version. Shared between calls: never
    changed once built, only replaced."""

    def __init__(
        self,
        found: list[int | None],
        version: int,
        classes: NodeClasses,
        names: list[str],
        positions: dict[str, int] | None = None,
    ) -> None:
        self.found = found
        self.version = version
        self.classes = classes
        self.names = names
        self._positions = positions

    def positions(self) -> dict[str, int]:
        """Where each name sits in the list (names are unique), built on first need."""
        if self._positions is None:
            self._positions = dict(zip(self.names, range(len(self.names)), strict=True))
        return self._positions


class _KnownLists:
    def __init__(self, size: int = 4) -> None:
        self._lock = threading.Lock()
        self._lists: OrderedDict[bytes, _Known] = OrderedDict()
        self._size = size

    def get(self, key: bytes) -> _Known | None:
        with self._lock:
            return self._lists.get(key)

    def put(self, key: bytes, known: _Known) -> None:
        with self._lock:
            self._lists[key] = known
            self._lists.move_to_end(key)
            while len(self._lists) > self._size:
                self._lists.popitem(last=False)


def _trimmed(pod: dict[str, Any]) -> dict[str, Any]:
    """What bind needs of a pod (its uid and container requests): a full pod is hundreds of
    objects, thousands of which would only slow the garbage collector."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    containers = spec.get("containers")
    if isinstance(containers, list):
        containers = [
            {"name": c.get("name"), "resources": c.get("resources")} if isinstance(c, dict) else c
            for c in containers
        ]
    return {"metadata": {"uid": meta.get("uid")}, "spec": {"containers": containers}}


def _uid(pod: dict[str, Any]) -> str:
    return str((pod.get("metadata") or {}).get("uid") or "")


def pod_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/pods/{name}"


class Extender:
    def __init__(
        self,
        client: KubeClient,
        state: ClusterState | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.client = client
        self.state = state or ClusterState()
        self._clock_ns = clock_ns
        self._recent = _PodCache()
        self._known = {"filter": _KnownLists(), "prioritize": _KnownLists()}
        self.demand = scoring.Demand()
        self._reflectors: list[Reflector] = []

    # --- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        self._reflectors = [
            Reflector(
                self.client,
                "/api/v1/nodes",
                None,
                self.state.apply_node,
                self.state.replace_nodes,
                name="nodes",
            ),
            Reflector(
                self.client,
                "/api/v1/pods",
                None,
                self.state.apply_pod,
                self.state.replace_pods,
                name="pods",
            ),
        ]
        for r in self._reflectors:
            r.start()

    def stop(self) -> None:
        for r in self._reflectors:
            r.stop()

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
        self.state.expire_moves()
        self._recent.put(args.pod_key, _trimmed(args.pod))
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
                lists.put(key, _Known(found, version, classes, known.names, positions))
                return found
        version = self.state.version  # read first: a change during the lookups is redone
        found = list(map(node_class.get, args.names))
        if len(set(args.names)) == len(args.names):
            lists.put(key, _Known(found, version, classes, args.names))
        return found

    def _class_of(self, node: dict[str, Any], classes: NodeClasses) -> int:
        """The class of a node object the watch has not shown yet, with whatever usage pods
        already record on it."""
        shape, problem, unhealthy = read_node(node, self.state.instance_type_label)
        used = self.state.used_without(node["metadata"]["name"], "") if shape else 0
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
        out = []
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
            counts = Counter(filter(fit.__contains__, found))
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
            score.update(scoring.scores(cost))
            if verdicts.get(OWN_NODE, UNKNOWN).reason is None:
                score[OWN_NODE] = scoring.BEST  # it holds its cores there already: no cost
        return names, list(map(score.__getitem__, found))

    # --- bind -----------------------------------------------------------------------------
    def _pod_for(self, args: BindingArgs) -> dict[str, Any]:
        pod = self._recent.get(args.pod_key)
        if pod is not None and (not args.pod_uid or _uid(pod) == args.pod_uid):
            return pod
        return self.client.get(pod_path(args.pod_namespace, args.pod_name))

    def _create_binding(self, args: BindingArgs, uid: str) -> None:
        meta: dict[str, Any] = {"name": args.pod_name, "namespace": args.pod_namespace}
        if uid:
            meta["uid"] = uid  # the API server refuses to bind a pod recreated under our feet
        self.client.post(
            pod_path(args.pod_namespace, args.pod_name) + "/binding",
            {
                "apiVersion": "v1",
                "kind": "Binding",
                "metadata": meta,
                "target": {"apiVersion": "v1", "kind": "Node", "name": args.node},
            },
        )

    def _patch(self, args: BindingArgs, uid: str, annotations: dict[str, str | None]) -> None:
        body = merge_patch(annotations)
        if uid:
            # A uid in the patch makes the API server refuse it if the pod was recreated
            # under the same name, instead of touching someone else's pod.
            body["metadata"]["uid"] = uid
        self.client.merge_patch(pod_path(args.pod_namespace, args.pod_name), body)

    def _bound_node(self, args: BindingArgs) -> str | None:
        try:
            pod = self.client.get(pod_path(args.pod_namespace, args.pod_name))
        except ApiError:
            return None
        return (pod.get("spec") or {}).get("nodeName") or None

    def bind(self, args: BindingArgs) -> BindOutcome:
        where = f"pod {args.pod_key} on node {args.node}"
        try:
            pod = self._pod_for(args)
        except ApiError as err:
            return BindOutcome(f"cannot bind {where}: reading the pod failed: {err}", "api_error")
        uid = _uid(pod) or args.pod_uid
        if args.pod_uid and uid != args.pod_uid:
            return BindOutcome(
                f"cannot bind {where}: the pod was replaced (uid {uid}, expected {args.pod_uid})",
                "bad_pod",
            )
        try:
            creqs = container_requests(pod)
        except BadPod as err:
            return BindOutcome(f"cannot bind {where}: {err}", "bad_pod")

        if not creqs:
            try:
                self._create_binding(args, uid)
            except ApiError as err:
                if err.status == 409 and self._bound_node(args) == args.node:
                    return BindOutcome("", "already_bound")
                return BindOutcome(f"cannot bind {where}: {err}", "api_error")
            return BindOutcome("", "bound_plain")

        self.state.expire_moves()
        reused = self.state.own_use(uid)
        try:
            r = self.state.reserve(uid, args.pod_key, args.node, creqs)
        except (Unavailable, NoFit) as err:
            return BindOutcome(f"cannot bind {where}: {err}", "no_fit")
        patched = False
        try:
            write = True
            if reused is not None and reused[0] == args.node:
                # A retry: the pod may already be bound, and the device plugin may already
                # have marked it allocated; rewriting NEURON_ALLOCATED=false would undo that.
                current = self.client.get(pod_path(args.pod_namespace, args.pod_name))
                if (current.get("spec") or {}).get("nodeName") == args.node:
                    self.state.confirm(r)
                    return BindOutcome("", "already_bound")
                write = _allocation_differs(current, r.allocations, args.node)
            if write:
                annotations = allocation_annotations(
                    args.node, list(r.allocations), self._clock_ns()
                )
                self._patch(args, uid, annotations)
                patched = True
            self._create_binding(args, uid)
        except ApiError as err:
            if err.status == 409 and self._bound_node(args) == args.node:
                self.state.confirm(r)
                return BindOutcome("", "already_bound")
            self._undo(args, r, patched)
            return BindOutcome(f"cannot bind {where}: {err}", "api_error")
        except BaseException:
            self._undo(args, r, patched)
            raise
        self.state.confirm(r)
        log.info(
            "bound",
            pod=args.pod_key,
            node=args.node,
            ids={a.container: list(a.placement.ids) for a in r.allocations},
        )
        return BindOutcome("", "bound")

    def _undo(self, args: BindingArgs, r: Reservation, patched: bool) -> None:
        if patched:
            try:
                self._patch(args, r.uid, dict.fromkeys(_WRITTEN_KEYS))
            except ApiError as err:
                # The stale annotation names IDs on an unbound pod; it keeps them until the
                # pod's next bind (which reuses or overwrites them) or its deletion.
                log.warning("removing annotations failed", pod=args.pod_key, error=str(err))
        self.state.release(r)


def _allocation_differs(pod: dict[str, Any], allocations: Any, node: str) -> bool:
    try:
        recorded = read_allocation(pod)
    except BadPod:
        return True
    if recorded is None or recorded[0] != node:
        return True
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    return list(recorded[1]) != list(allocations) or AWS_NEURON_IDS not in annotations
