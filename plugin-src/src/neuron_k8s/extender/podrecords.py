"""The pods that carry a record, and what each record is worth now (extender/records.py
read_use): checked again when the shape of the node it names changes, and each unusable one
reported once per change (a log line, a count by reason, and on_rejected, which the extender
turns into an Event on the pod). Not locked: the state calls it under its own lock."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..logs import get_logger
from ..topology import Shape
from .caches import watched_pod
from .records import PodUse, Unusable, pod_key, read_use

log = get_logger("extender.records")


@dataclass(frozen=True, slots=True)
class Rejected:
    uid: str
    namespace: str
    name: str
    reason: str  # Unusable.reason
    message: str


class RecordBook:
    def __init__(self) -> None:
        self._pods: dict[str, dict[str, Any]] = {}  # uid -> the pod (trimmed), while it has one
        self._named: dict[str, str] = {}  # uid -> the node its record names
        self._naming: dict[str, set[str]] = {}  # node -> uids whose record names it
        self._problems: dict[str, str] = {}  # uid -> what was last reported about it
        self.rejections: Counter[str] = Counter()  # reports by reason, since start
        self.on_rejected: Callable[[Rejected], None] | None = None

    def __contains__(self, uid: str) -> bool:
        return uid in self._pods

    def known(self) -> list[str]:
        """The pods whose record is kept: counted, rejected, or waiting for their node."""
        return list(self._pods)

    def judge(
        self, uid: str, obj: dict[str, Any] | None, shape_of: Callable[[str], Shape | None]
    ) -> PodUse | None:
        """What pod `uid`'s record is worth now; None (the pod is gone) forgets it."""
        self._unname(uid)
        use, problem = None, None
        if obj is not None:
            try:
                use = read_use(obj, shape_of)
            except Unusable as err:
                problem = err
        named = use.node if use else problem.node if problem else None
        if obj is None or (use is None and problem is None):
            self._pods.pop(uid, None)  # no record, or finished: nothing to check again
        else:
            self._pods[uid] = watched_pod(obj)
            if named is not None:
                self._named[uid] = named
                self._naming.setdefault(named, set()).add(uid)
        if problem is None:
            self._problems.pop(uid, None)
        elif self._problems.get(uid) != problem.message and obj is not None:
            self._problems[uid] = problem.message
            self._report(uid, obj, problem)
        return use

    def revalidate(
        self, node: str, shape_of: Callable[[str], Shape | None]
    ) -> Iterator[tuple[str, PodUse | None]]:
        """Judge again every pod whose record names `node` (its shape changed)."""
        for uid in sorted(self._naming.get(node, ())):
            yield uid, self.judge(uid, self._pods.get(uid), shape_of)

    def _unname(self, uid: str) -> None:
        node = self._named.pop(uid, None)
        if node is not None:
            uids = self._naming[node]
            uids.discard(uid)
            if not uids:
                del self._naming[node]

    def _report(self, uid: str, obj: dict[str, Any], problem: Unusable) -> None:
        self.rejections[problem.reason] += 1
        log.warning(
            "pod record ignored",
            pod=pod_key(obj),
            uid=uid,
            reason=problem.reason,
            error=problem.message,
        )
        if self.on_rejected is not None:
            meta = obj.get("metadata")
            meta = meta if isinstance(meta, dict) else {}
            self.on_rejected(
                Rejected(
                    uid,
                    str(meta.get("namespace") or ""),
                    str(meta.get("name") or ""),
                    problem.reason,
                    problem.message,
                )
            )
