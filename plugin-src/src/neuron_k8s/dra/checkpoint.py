"""The driver's record of prepared claims, on the node (beside its socket), so that a restarted
driver answers a repeated NodePrepareResources with the same devices and can still unprepare a
claim whose ResourceClaim is gone. Written atomically (rename) after every change.

One file per instance (instances.py): the two drivers of a rolling update each write only
their own. A starting instance adopts what the others' files record and removes the files of
instances no longer running; the file of one still running stays its own until a later start
finds it stopped."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from neuron_k8s.logs import get_logger

from .instances import checkpoint_name, checkpoint_owner, running

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
        self._claims: dict[str, Prepared] = _load(path)

    @classmethod
    def of_instance(cls, folder: str, pod_uid: str) -> Checkpoint:
        return cls(os.path.join(folder, checkpoint_name(pod_uid)))

    def adopt(self, keep: Callable[[str], bool]) -> list[str]:
        """Take in the claims the other instances' checkpoints in this folder record, those
        `keep` accepts (the caller's: their CDI spec is still there, i.e. not unprepared since)
        and this one does not know; then remove the files of the instances no longer running.
        Returns the claims taken in."""
        folder, mine = os.path.split(self.path)
        me = checkpoint_owner(mine) or ""
        try:
            names = sorted(os.listdir(folder or "."))
        except OSError:
            return []
        adopted: list[str] = []
        finished: list[str] = []
        with self._lock:
            for name in names:
                owner = checkpoint_owner(name)
                if owner is None or name == mine:
                    continue
                path = os.path.join(folder, name)
                for uid, record in _load(path).items():
                    if uid not in self._claims and keep(uid):
                        self._claims[uid] = record
                        adopted.append(uid)
                if not running(folder, owner, me):
                    finished.append(path)
            try:
                if adopted:
                    self._save()
            except OSError as err:
                # Their files stay for the next start to adopt.
                log.error("saving adopted claims failed", path=self.path, error=str(err))
                return adopted
        for path in finished:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        if adopted or finished:
            log.info("adopted other instances' claims", claims=adopted, removed=finished)
        return adopted

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


def _load(path: str) -> dict[str, Prepared]:
    try:
        with open(path) as f:
            doc = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        # Refusing to start would leave every pod of the node stuck; an empty record only
        # makes the kubelet's next prepare of a claim do it again.
        log.error("checkpoint unreadable, starting empty", path=path, error=str(err))
        return {}
    if not isinstance(doc, dict) or doc.get("version") != VERSION:
        log.error("checkpoint of another version, starting empty", path=path)
        return {}
    try:
        return {uid: _prepared(entry) for uid, entry in (doc.get("claims") or {}).items()}
    except (AttributeError, KeyError, TypeError) as err:
        log.error("checkpoint malformed, starting empty", path=path, error=repr(err))
        return {}


def _prepared(entry: dict[str, Any]) -> Prepared:
    return Prepared(
        namespace=entry["namespace"],
        name=entry["name"],
        pool=entry["pool"],
        devices=tuple(
            PreparedDevice(d["request"], d["device"], tuple(d["cdi_ids"])) for d in entry["devices"]
        ),
    )
