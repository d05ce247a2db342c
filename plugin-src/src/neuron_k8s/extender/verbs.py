"""filter, prioritize and bind over the cluster state, and the watches that feed it."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
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
from .fit import Verdict, evaluate
from .protocol import BindingArgs, ExtenderArgs, filter_result, priority_list
from .state import UNKNOWN_NODE, ClusterState, NodeView, Unavailable, read_node

log = get_logger("extender")

# The keys bind writes, so that a failed bind can remove exactly these and nothing else.
_WRITTEN_KEYS = tuple(allocation_annotations("", [], 0))


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
    def _judge(self, args: ExtenderArgs) -> tuple[list[tuple[str, Verdict]], str | None]:
        """A verdict per candidate node, or (no verdicts, reason) when the pod itself cannot be
        served. A pod that asks for no Neuron resource fits everywhere."""
        self._recent.put(args.pod_key, args.pod)
        try:
            creqs = container_requests(args.pod)
        except BadPod as err:
            return [], f"the pod cannot be served by the Neuron extender: {err}"
        if not creqs:
            ok = Verdict(None, False, 0)
            return [(n, ok) for n in args.names], None
        requests = tuple(c.request for c in creqs)
        state = self.state
        nodes = state.nodes
        cache = state.verdicts
        table = cache.table(requests)
        own = state.own_use(args.pod_uid) if args.pod_uid else None
        by_name = (
            {n["metadata"]["name"]: n for n in args.node_items}
            if args.node_items is not None
            else None
        )
        out: list[tuple[str, Verdict]] = []
        append = out.append
        for name in args.names:
            view = nodes.get(name)
            if view is None:
                if by_name is None:
                    append((name, Verdict(UNKNOWN_NODE, True, 0)))
                    continue
                view = self._view_of(by_name[name])
            if view.cls < 0:
                append((name, Verdict(view.problem, True, 0)))
                continue
            if own is not None and own[0] == name:
                # The pod already holds cores here (a retry): do not count it against itself.
                v = self._evaluate(view, requests, state.used_without(name, args.pod_uid))
            else:
                v = table.get(view.cls) or cache.verdict(
                    table,
                    view.cls,
                    view.shape,
                    requests,
                    view.used,
                    view.unhealthy,  # type: ignore[arg-type]
                )
            append((name, v))
        return out, None

    @staticmethod
    def _evaluate(view: NodeView, requests: tuple[Request, ...], used: int) -> Verdict:
        assert view.shape is not None
        return evaluate(view.shape, requests, used, view.unhealthy)

    def _view_of(self, node: dict[str, Any]) -> NodeView:
        """A node the watch has not shown yet, from the object kube-scheduler passed
        (nodeCacheCapable: false), with whatever usage pods already record on it."""
        name = node["metadata"]["name"]
        shape, problem, unhealthy = read_node(node)
        if shape is None:
            return NodeView(name, None, problem, 0, 0, -1)
        used = self.state.usage().get(name, 0)
        return NodeView(
            name, shape, None, unhealthy, used, self.state.verdicts.class_of(shape, used, unhealthy)
        )

    def filter(self, args: ExtenderArgs) -> dict[str, Any]:
        verdicts, pod_error = self._judge(args)
        if pod_error is not None:
            return filter_result(args, [], {}, dict.fromkeys(args.names, pod_error))
        passed: list[str] = []
        failed: dict[str, str] = {}
        unresolvable: dict[str, str] = {}
        for name, v in verdicts:
            if v.reason is None:
                passed.append(name)
            elif v.unresolvable:
                unresolvable[name] = v.reason
            else:
                failed[name] = v.reason
        return filter_result(args, passed, failed, unresolvable)

    def prioritize(self, args: ExtenderArgs) -> list[dict[str, Any]]:
        verdicts, pod_error = self._judge(args)
        if pod_error is not None:
            return priority_list([(n, 0) for n in args.names])
        return priority_list([(n, v.score if v.reason is None else 0) for n, v in verdicts])

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

        reused = self.state.own_use(uid)
        try:
            r = self.state.reserve(uid, args.pod_key, args.node, creqs)
        except (Unavailable, NoFit) as err:
            return BindOutcome(f"cannot bind {where}: {err}", "no_fit")
        outcome = "bound"
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
                self.client.merge_patch(
                    pod_path(args.pod_namespace, args.pod_name), merge_patch(annotations)
                )
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
        return BindOutcome("", outcome)

    def _undo(self, args: BindingArgs, r: Any, patched: bool) -> None:
        if patched:
            try:
                self.client.merge_patch(
                    pod_path(args.pod_namespace, args.pod_name),
                    merge_patch(dict.fromkeys(_WRITTEN_KEYS)),
                )
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
