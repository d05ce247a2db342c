"""Helpers over API objects of any kind: a key for logs, and a callback applied to each object
in isolation (the Reflector's callbacks, and owners replacing their view from a list)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .logs import get_logger

log = get_logger("kube")


def object_key(obj: Any) -> str:
    """namespace/name (or name) of an object, for logs; "?" for what is not an object."""
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    if not isinstance(meta, dict):
        return "?"
    ns, name = meta.get("namespace"), meta.get("name")
    return f"{ns}/{name}" if ns else str(name)


def for_each_object(
    items: Iterable[dict[str, Any]], fn: Callable[[dict[str, Any]], None], what: str
) -> int:
    """Call fn on each object; an object it raises for is logged with its key and skipped, so
    that one object (a pod owner writes its annotations) never stops the others. Returns how
    many were skipped."""
    skipped = 0
    for obj in items:
        try:
            fn(obj)
        except Exception as err:  # isolating each object is the point
            skipped += 1
            log.error(
                "object skipped: its callback failed",
                reflector=what,
                object=object_key(obj),
                error=f"{type(err).__name__}: {err}",
                exc_info=True,
            )
    return skipped
