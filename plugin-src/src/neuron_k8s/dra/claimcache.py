"""The ResourceClaims the kubelet may ask this driver to prepare, kept current by a watch, so
that NodePrepareResources reads a local copy and makes no API call inside the kubelet's gRPC
call. A claim allocated a moment ago may not have reached the watch yet: `wait` gives it a few
seconds before the prepare fails and the kubelet retries."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from neuron_k8s.kube import KubeClient, Reflector

CLAIMS_PATH = "/apis/resource.k8s.io/v1/resourceclaims"


def _preparable(claim: dict[str, Any]) -> bool:
    """Allocated and reserved for a pod. The kubelet prepares a claim only once it is reserved
    for the pod it starts, so a copy with an allocation but no reservation is one the watch has
    not brought up to date: the reservation of a finished pod released, the allocation perhaps
    about to be replaced by another (a standalone claim used again)."""
    status = claim.get("status") or {}
    return bool(status.get("allocation")) and bool(status.get("reservedFor"))


class ClaimCache:
    def __init__(self) -> None:
        self._by_uid: dict[str, dict[str, Any]] = {}
        self._changed = threading.Condition()
        self._reflector: Reflector | None = None

    # --- fed by the watch (or by tests) ------------------------------------------------
    def replace(self, claims: list[dict[str, Any]]) -> None:
        with self._changed:
            self._by_uid = {c["metadata"]["uid"]: c for c in claims if _uid(c)}
            self._changed.notify_all()

    def apply(self, kind: str, claim: dict[str, Any]) -> None:
        uid = _uid(claim)
        if not uid:
            return
        with self._changed:
            if kind == "DELETED":
                self._by_uid.pop(uid, None)
            else:
                self._by_uid[uid] = claim
            self._changed.notify_all()

    # --- read by the gRPC service -------------------------------------------------------
    def get(self, uid: str) -> dict[str, Any] | None:
        with self._changed:
            return self._by_uid.get(uid)

    def wait(
        self, uid: str, timeout: float, ready: Callable[[dict[str, Any]], bool] = _preparable
    ) -> dict[str, Any] | None:
        """The claim once the watch shows it `ready` (allocated and reserved), or None after
        `timeout`."""
        with self._changed:
            self._changed.wait_for(
                lambda: (c := self._by_uid.get(uid)) is not None and ready(c), timeout
            )
            claim = self._by_uid.get(uid)
        return claim if claim is not None and ready(claim) else None

    # --- the watch ----------------------------------------------------------------------
    def start(self, client: KubeClient) -> None:
        self._reflector = Reflector(
            client, CLAIMS_PATH, None, self.apply, self.replace, name="resourceclaims"
        )
        self._reflector.start()

    @property
    def synced(self) -> bool:
        return self._reflector is not None and self._reflector.synced.is_set()

    def stop(self) -> None:
        if self._reflector is not None:
            self._reflector.stop()


def _uid(claim: dict[str, Any]) -> str:
    return str((claim.get("metadata") or {}).get("uid") or "")
