"""bind: pick the IDs, then bind the pod with them in one write. The API server copies a
Binding's own annotations onto the pod as it sets spec.nodeName, so the pod is never seen
bound without its record, nor with a record and unbound; a failed bind leaves nothing to
undo but the reservation in memory (docs/architecture.md, "Extender")."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..allocator import RESOURCE_NAMES, NoFit
from ..kube import ApiError, KubeClient
from ..logs import get_logger
from ..pods import BadPod, allocation_annotations, container_requests
from .caches import PodCache
from .holdings import Reservation, Unavailable
from .protocol import BindingArgs
from .state import ClusterState

log = get_logger("extender.bind")


@dataclass(frozen=True)
class BindOutcome:
    error: str  # "" on success
    # for metrics: bound, bound_without_neuron, already_bound, no_fit, bad_pod, api_error, and
    # the refusals of pods that are not the extender's: refused_scheduler, refused_not_neuron
    outcome: str


def pod_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/pods/{name}"


def _uid(pod: dict[str, Any]) -> str:
    return str((pod.get("metadata") or {}).get("uid") or "")


def _names_neuron(pod: dict[str, Any]) -> bool:
    """Whether any container names a Neuron resource, at any quantity (0 included): that is
    enough for kube-scheduler to send the pod's bind here (HTTPExtender.IsInterested)."""
    spec = pod.get("spec") or {}
    for field in ("initContainers", "containers"):
        for c in spec.get(field) or []:
            res = (c.get("resources") or {}) if isinstance(c, dict) else {}
            for section in ("requests", "limits"):
                values = res.get(section) if isinstance(res, dict) else None
                if isinstance(values, dict) and any(k in RESOURCE_NAMES for k in values):
                    return True
    return False


class Binder:
    def __init__(
        self,
        client: KubeClient,
        state: ClusterState,
        recent: PodCache,
        clock_ns: Callable[[], int] = time.time_ns,
        scheduler_name: str | None = None,
    ) -> None:
        self.client = client
        self.state = state
        self._recent = recent
        self._clock_ns = clock_ns
        # Only this scheduler's pods are bound (None: any), so that nobody else can use the
        # extender's right to bind pods to get round their own scheduler.
        self._scheduler = scheduler_name

    def _pod_for(self, args: BindingArgs) -> dict[str, Any]:
        pod = self._recent.get(args.pod_key)
        if pod is not None and (not args.pod_uid or _uid(pod) == args.pod_uid):
            return pod
        return self.client.get(pod_path(args.pod_namespace, args.pod_name))

    def _post_binding(self, args: BindingArgs, uid: str, annotations: dict[str, str]) -> None:
        meta: dict[str, Any] = {"name": args.pod_name, "namespace": args.pod_namespace}
        if uid:
            meta["uid"] = uid  # the API server refuses to bind a pod recreated under our feet
        if annotations:
            meta["annotations"] = annotations  # copied onto the pod in the same write
        self.client.post(
            pod_path(args.pod_namespace, args.pod_name) + "/binding",
            {
                "apiVersion": "v1",
                "kind": "Binding",
                "metadata": meta,
                "target": {"apiVersion": "v1", "kind": "Node", "name": args.node},
            },
        )

    def _where(self, args: BindingArgs, uid: str) -> str | None:
        """The node this incarnation of the pod is bound to: "" when unbound or gone, None when
        the API cannot say."""
        try:
            pod = self.client.get(pod_path(args.pod_namespace, args.pod_name))
        except ApiError as err:
            return "" if err.status == 404 else None
        if uid and _uid(pod) != uid:
            return ""  # replaced: this incarnation is gone
        return str((pod.get("spec") or {}).get("nodeName") or "")

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
        scheduler = (pod.get("spec") or {}).get("schedulerName") or "default-scheduler"
        if self._scheduler is not None and scheduler != self._scheduler:
            return BindOutcome(
                f"refusing to bind {where}: it names scheduler {scheduler!r}, and the Neuron "
                f"extender binds only the pods of {self._scheduler!r}",
                "refused_scheduler",
            )
        try:
            creqs = container_requests(pod)
        except BadPod as err:
            return BindOutcome(f"cannot bind {where}: {err}", "bad_pod")
        if not creqs and _names_neuron(pod):
            # It names a Neuron resource at quantity 0 (a templated CPU-only run): nothing to
            # pick or record, and nobody else will bind it.
            return self._bind_plainly(args, uid)
        if not creqs:
            return BindOutcome(
                f"refusing to bind {where}: it asks for no Neuron device or core, and the Neuron "
                "extender binds only pods that do",
                "refused_not_neuron",
            )
        held = self.state.reservations().get(uid)
        if held is not None and held.node != args.node and held.confirmed_at is not None:
            # An earlier bind's outcome was not known; the pod can be bound only once.
            bound = self._where(args, uid)
            if bound != "":
                return BindOutcome(
                    f"cannot bind {where}: it is bound to {bound or 'a node the API cannot name'}",
                    "no_fit",
                )
            self.state.release(held)
        try:
            r = self.state.reserve(uid, args.pod_key, args.node, creqs)
        except (Unavailable, NoFit) as err:
            return BindOutcome(f"cannot bind {where}: {err}", "no_fit")
        notes = allocation_annotations(args.node, list(r.allocations), self._clock_ns())
        return self._finish(args, uid, r, notes, "bound")

    def _bind_plainly(self, args: BindingArgs, uid: str) -> BindOutcome:
        try:
            self._post_binding(args, uid, {})
        except ApiError as err:
            unknown = err.status in (0, 409) or err.status >= 500
            if unknown and self._where(args, uid) == args.node:
                return BindOutcome("", "already_bound")
            return BindOutcome(f"cannot bind pod {args.pod_key}: {err}", "api_error")
        log.info("bound without Neuron devices", pod=args.pod_key, node=args.node)
        return BindOutcome("", "bound_without_neuron")

    def _finish(
        self, args: BindingArgs, uid: str, r: Reservation, notes: dict[str, str], outcome: str
    ) -> BindOutcome:
        where = f"pod {args.pod_key} on node {args.node}"
        try:
            self._post_binding(args, uid, notes)
        except ApiError as err:
            unknown = err.status == 0 or err.status >= 500
            # 409: bound already (a retry); 0 and 5xx: the Binding may exist, its answer lost.
            bound = self._where(args, uid) if unknown or err.status == 409 else ""
            if bound == args.node:
                self.state.confirm(r)
                return BindOutcome("", "already_bound" if err.status == 409 else outcome)
            if unknown and not bound:
                # Unbound for now, or the API cannot say: the Binding may still land. Keep the
                # cores held as if bound until the watch shows the pod (bound here, its record
                # takes over; gone, they are freed; a later bind elsewhere asks the API again).
                self.state.confirm(r)
                return BindOutcome(f"cannot bind {where}: outcome unknown: {err}", "api_error")
            self.state.release(r)
            return BindOutcome(f"cannot bind {where}: {err}", "api_error")
        self.state.confirm(r)
        log.info(
            "bound",
            pod=args.pod_key,
            node=args.node,
            ids={a.container: list(a.placement.ids) for a in r.allocations},
        )
        return BindOutcome("", outcome)
