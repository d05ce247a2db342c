"""Which nodes changed class, by version: a reader holding the classes of a long candidate
list brings it up to date from here instead of looking every node up again (verbs.py)."""

from __future__ import annotations

import bisect

MAX_CHANGES = 20_000


class ChangeLog:
    """Not locked: the state writes and reads it under its own lock."""

    def __init__(self, limit: int = MAX_CHANGES) -> None:
        self.version = 0
        self._changes: list[tuple[int, str]] = []
        self._floor = 0  # since() answers for versions from here on
        self._limit = limit

    def log(self, node: str) -> None:
        self.version += 1
        self._changes.append((self.version, node))
        if len(self._changes) > self._limit:
            half = len(self._changes) // 2
            self._floor = self._changes[half - 1][0]
            del self._changes[:half]

    def since(self, version: int) -> tuple[int, list[str]] | None:
        """(the current version, the nodes whose class changed after `version`), or None when
        the log no longer reaches back that far."""
        if version < self._floor:
            return None
        start = bisect.bisect_right(self._changes, version, key=lambda c: c[0])
        return self.version, [node for _, node in self._changes[start:]]

    def reset(self) -> None:
        """Every class changed (the class table was rebuilt): readers start over."""
        self.version += 1
        self._changes.clear()
        self._floor = self.version
