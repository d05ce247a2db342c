"""The Neuron pods waiting for a node, for the metrics: pods not bound, not finished, whose
containers ask for Neuron devices or cores, as the pod watch shows them. The watch callbacks of
the cluster state pass through, so the count follows the same events."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from neuron_k8s.pods import BadPod, container_requests, holds_resources

from .records import pod_uid


def pending(obj: dict[str, Any]) -> bool:
    """Whether the pod waits for a node with Neuron requests (a pod whose requests cannot be
    read is not counted: the extender refuses it, it never becomes a Neuron pod)."""
    spec = obj.get("spec")
    if not isinstance(spec, dict) or spec.get("nodeName") or not holds_resources(obj):
        return False
    try:
        return bool(container_requests(obj))
    except BadPod:
        return False


class PendingPods:
    """Wraps the state's pod watch callbacks (`apply(event, obj)`, `replace(items)`)."""

    def __init__(
        self,
        apply: Callable[[str, dict[str, Any]], None],
        replace: Callable[[Iterable[dict[str, Any]]], None],
    ) -> None:
        self._apply = apply
        self._replace = replace
        self._lock = threading.Lock()
        self._uids: set[str] = set()

    def count(self) -> int:
        with self._lock:
            return len(self._uids)

    def apply(self, event: str, obj: dict[str, Any]) -> None:
        if isinstance(obj, dict):
            uid = pod_uid(obj)
            waiting = event != "DELETED" and pending(obj)
            with self._lock:
                if waiting:
                    self._uids.add(uid)
                else:
                    self._uids.discard(uid)
        self._apply(event, obj)

    def replace(self, items: Iterable[dict[str, Any]]) -> None:
        items = list(items)
        uids = {pod_uid(o) for o in items if isinstance(o, dict) and pending(o)}
        with self._lock:
            self._uids = uids
        self._replace(items)
