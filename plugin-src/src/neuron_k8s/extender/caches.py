"""Caches of the verbs: the pods filter saw (bind's arguments name only the pod), and the
node classes of recent candidate lists (kube-scheduler resends the same thousands of names)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from ..pods import ALLOCATION, UNHEALTHY_DEVICES
from .fit import NodeClasses

# Older nodes carry the instance type only under this label (records.read_node reads both).
LEGACY_INSTANCE_TYPE_LABEL = "beta.kubernetes.io/instance-type"


class PodCache:
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


class KnownList:
    """The classes of one candidate list as of a state version. Shared between calls: never
    changed once built, only replaced."""

    def __init__(
        self,
        found: list[int | None],
        version: int,
        classes: NodeClasses,
        names: list[str],
        positions: dict[str, int] | None = None,
    ) -> None:
        self.found = found
        self.version = version
        self.classes = classes
        self.names = names
        self._positions = positions

    def positions(self) -> dict[str, int]:
        """Where each name sits in the list (names are unique), built on first need."""
        if self._positions is None:
            self._positions = dict(zip(self.names, range(len(self.names)), strict=True))
        return self._positions


class KnownLists:
    def __init__(self, size: int = 4) -> None:
        self._lock = threading.Lock()
        self._lists: OrderedDict[bytes, KnownList] = OrderedDict()
        self._size = size

    def get(self, key: bytes) -> KnownList | None:
        with self._lock:
            return self._lists.get(key)

    def put(self, key: bytes, known: KnownList) -> None:
        with self._lock:
            self._lists[key] = known
            self._lists.move_to_end(key)
            while len(self._lists) > self._size:
                self._lists.popitem(last=False)


def trimmed(pod: dict[str, Any]) -> dict[str, Any]:
    """What bind needs of a pod (its uid, scheduler and containers' requests): a full pod is
    hundreds of objects, thousands of which would only slow the garbage collector."""
    meta = pod.get("metadata")
    spec = pod.get("spec")
    if not isinstance(meta, dict) or not isinstance(spec, dict):
        return pod  # malformed: bind reports it as it is
    keep = {"schedulerName": spec.get("schedulerName")}
    for field in ("initContainers", "containers"):
        containers = spec.get(field)
        if isinstance(containers, list):
            containers = [
                {k: c.get(k) for k in ("name", "resources", "restartPolicy") if k in c}
                if isinstance(c, dict)
                else c
                for c in containers
            ]
        if containers is not None:
            keep[field] = containers
    return {"metadata": {"uid": meta.get("uid")}, "spec": keep}


def watched_pod(pod: dict[str, Any]) -> dict[str, Any]:
    """What the pod watch keeps of a pod, trimmed as each page or event is parsed: trimmed()
    plus its name, node, phase and record (a cluster's pods do not fit in memory whole)."""
    out = trimmed(pod)
    if out is pod:
        return pod
    meta, spec, status = pod["metadata"], pod["spec"], pod.get("status")
    kept = out["metadata"]
    for field in ("name", "namespace", "resourceVersion"):
        if field in meta:
            kept[field] = meta[field]
    notes = meta.get("annotations")
    if isinstance(notes, dict) and ALLOCATION in notes:
        kept["annotations"] = {ALLOCATION: notes[ALLOCATION]}
    if "nodeName" in spec:
        out["spec"]["nodeName"] = spec["nodeName"]
    if isinstance(status, dict):
        out["status"] = {"phase": status.get("phase")}
    return out


def watched_node(node: dict[str, Any], instance_type_label: str) -> dict[str, Any]:
    """What the node watch keeps of a node: what records.read_node reads."""
    meta, status = node.get("metadata"), node.get("status")
    if not isinstance(meta, dict) or not isinstance(status, dict):
        return node
    labels, notes = meta.get("labels"), meta.get("annotations")
    kept: dict[str, Any] = {k: meta[k] for k in ("name", "resourceVersion") if k in meta}
    if isinstance(labels, dict):
        keys = (instance_type_label, LEGACY_INSTANCE_TYPE_LABEL)
        kept["labels"] = {k: labels[k] for k in keys if k in labels}
    if isinstance(notes, dict) and UNHEALTHY_DEVICES in notes:
        kept["annotations"] = {UNHEALTHY_DEVICES: notes[UNHEALTHY_DEVICES]}
    return {"metadata": kept, "status": {"capacity": status.get("capacity")}}
