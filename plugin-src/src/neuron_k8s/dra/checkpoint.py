"""The driver's record of prepared claims, on the node (beside its socket), so that a restarted
driver answers a repeated NodePrepareResources with the same devices and can still unprepare a
claim whose ResourceClaim is gone. Written atomically (rename) after every change."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass
from typing import Any

from neuron_k8s.logs import get_logger

log = get_logger("dra.checkpoint")
VERSION = 1


@dataclass(frozen=True)
class PreparedDevice:
    request: str
    device: str
    cdi_ids: tuple[str, ...]


@dataclass(frozen=True)
class Prepared:
    namespace: str
    name: str
    pool: str
    devices: tuple[PreparedDevice, ...]


class Checkpoint:
    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._claims: dict[str, Prepared] = self._load()

    def _load(self) -> dict[str, Prepared]:
        try:
            with open(self.path) as f:
                doc = json.load(f)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as err:
            # Refusing to start would leave every pod of the node stuck; an empty record only
            # makes the kubelet's next prepare of a claim do it again.
            log.error("checkpoint unreadable, starting empty", path=self.path, error=str(err))
            return {}
        if not isinstance(doc, dict) or doc.get("version") != VERSION:
            log.error("checkpoint of another version, starting empty", path=self.path)
            return {}
        try:
            return {uid: _prepared(entry) for uid, entry in (doc.get("claims") or {}).items()}
        except (AttributeError, KeyError, TypeError) as err:
            log.error("checkpoint malformed, starting empty", path=self.path, error=repr(err))
            return {}

    def get(self, uid: str) -> Prepared | None:
        with self._lock:
            return self._claims.get(uid)

    def uids(self) -> set[str]:
        with self._lock:
            return set(self._claims)

    def put(self, uid: str, prepared: Prepared) -> None:
        with self._lock:
            self._claims[uid] = prepared
            self._save()

    def drop(self, uid: str) -> None:
        with self._lock:
            if self._claims.pop(uid, None) is not None:
                self._save()

    def _save(self) -> None:
        doc = {"version": VERSION, "claims": {u: asdict(p) for u, p in self._claims.items()}}
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        tmp = f"{self.path}.tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


def _prepared(entry: dict[str, Any]) -> Prepared:
    return Prepared(
        namespace=entry["namespace"],
        name=entry["name"],
        pool=entry["pool"],
        devices=tuple(
            PreparedDevice(d["request"], d["device"], tuple(d["cdi_ids"])) for d in entry["devices"]
        ),
    )
