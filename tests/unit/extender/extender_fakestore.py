"""The fake API server's object store (FakeCluster): pods and nodes with resource versions, an
event history per kind for watches, paginated lists, bindings and merge patches. Usable
without HTTP too, for fast property tests; extender_fakeapi.py serves it over HTTP."""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field
from typing import Any


class Failure(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def status(self) -> dict[str, Any]:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }


def merge(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge(out.get(k), v)
    return out


@dataclass
class FakeCluster:
    """Pods and nodes with resource versions and an event history per kind."""

    objects: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {"pods": {}, "nodes": {}}
    )
    history: dict[str, list[tuple[int, str, dict[str, Any]]]] = field(
        default_factory=lambda: {"pods": [], "nodes": []}
    )
    rv: int = 100
    compacted: int = 0  # watches from a version at or below this get 410 Gone
    cond: threading.Condition = field(default_factory=threading.Condition)
    # Paginated lists in progress: continue token -> (the list's version, the items left).
    pages: dict[str, tuple[int, list[dict[str, Any]]]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)  # core/v1 Events posted

    @staticmethod
    def key(obj: dict[str, Any]) -> str:
        meta = obj["metadata"]
        ns = meta.get("namespace")
        return f"{ns}/{meta['name']}" if ns else meta["name"]

    def _emit(self, kind: str, event: str, obj: dict[str, Any]) -> dict[str, Any]:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.history[kind].append((self.rv, event, copy.deepcopy(obj)))
        self.cond.notify_all()
        return copy.deepcopy(obj)

    def put(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        with self.cond:
            obj = copy.deepcopy(obj)
            k = self.key(obj)
            event = "MODIFIED" if k in self.objects[kind] else "ADDED"
            if kind == "pods":
                obj["metadata"].setdefault("uid", f"uid-{k.replace('/', '-')}-{self.rv}")
            self.objects[kind][k] = obj
            return self._emit(kind, event, obj)

    def delete(self, kind: str, key: str) -> None:
        with self.cond:
            obj = self.objects[kind].pop(key)
            self._emit(kind, "DELETED", obj)

    def get(self, kind: str, key: str) -> dict[str, Any]:
        with self.cond:
            obj = self.objects[kind].get(key)
            if obj is None:
                name = key.split("/")[-1]
                raise Failure(404, "NotFound", f'{kind} "{name}" not found')
            return copy.deepcopy(obj)

    def list(self, kind: str, limit: int = 0, token: str = "") -> dict[str, Any]:
        """As the API server lists: with `limit`, a page and a continue token that serves the
        rest of the same snapshot; an unknown (expired) token is 410 Expired."""
        with self.cond:
            if token:
                if token not in self.pages:
                    raise Failure(410, "Expired", "The provided continue parameter is too old")
                rv, items = self.pages.pop(token)
            else:
                rv, items = self.rv, [copy.deepcopy(o) for o in self.objects[kind].values()]
            meta: dict[str, Any] = {"resourceVersion": str(rv)}
            if limit and len(items) > limit:
                items, rest = items[:limit], items[limit:]
                meta["continue"] = f"{kind}-{rv}-{len(self.pages)}-{len(rest)}"
                self.pages[meta["continue"]] = (rv, rest)
            return {
                "kind": "PodList" if kind == "pods" else "NodeList",
                "apiVersion": "v1",
                "metadata": meta,
                "items": items,
            }

    def expire_lists(self) -> None:
        """Forget every paginated list in progress: their next page is 410 Expired."""
        with self.cond:
            self.pages.clear()

    def patch_pod(self, key: str, patch: dict[str, Any]) -> dict[str, Any]:
        with self.cond:
            obj = self.get("pods", key)
            if "metadata" in obj and isinstance(patch.get("metadata"), dict):
                uid = patch["metadata"].get("uid")
                if uid and uid != obj["metadata"].get("uid"):
                    raise Failure(409, "Conflict", "uid precondition failed")
            obj = merge(obj, patch)
            self.objects["pods"][key] = obj
            return self._emit("pods", "MODIFIED", obj)

    def bind_pod(self, key: str, binding: dict[str, Any]) -> None:
        with self.cond:
            obj = self.get("pods", key)
            if binding.get("kind") != "Binding" or (binding.get("target") or {}).get("kind") != (
                "Node"
            ):
                raise Failure(400, "BadRequest", "not a Binding to a Node")
            uid = (binding.get("metadata") or {}).get("uid")
            if uid and uid != obj["metadata"].get("uid"):
                raise Failure(409, "Conflict", "Precondition failed: UID in precondition")
            current = (obj.get("spec") or {}).get("nodeName")
            if current:
                name = obj["metadata"]["name"]
                raise Failure(409, "Conflict", f"pod {name} is already assigned to node {current}")
            obj.setdefault("spec", {})["nodeName"] = binding["target"]["name"]
            # As the API server does: the Binding's annotations land on the pod in this write.
            notes = (binding.get("metadata") or {}).get("annotations") or {}
            obj["metadata"].setdefault("annotations", {}).update(notes)
            self.objects["pods"][key] = obj
            self._emit("pods", "MODIFIED", obj)

    def set_phase(self, key: str, phase: str) -> None:
        with self.cond:
            obj = self.get("pods", key)
            obj.setdefault("status", {})["phase"] = phase
            self.objects["pods"][key] = obj
            self._emit("pods", "MODIFIED", obj)

    def compact(self) -> None:
        """Forget the history: watches from an older version get 410 Gone, forcing a re-list."""
        with self.cond:
            self.rv += 1
            self.compacted = self.rv
            for kind in self.history:
                self.history[kind].clear()
            self.cond.notify_all()
