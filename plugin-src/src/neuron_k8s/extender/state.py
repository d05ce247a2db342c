"""The extender's in-memory view of the cluster: each node's Neuron shape and which of its cores
are taken, derived only from node and pod objects (fed by watches) plus the reservations of
binds in flight. Nothing is stored on nodes, so a restarted extender rebuilds exactly the same
view from the API.

Usage of a node = the cores of the pods recorded on it (their allocation annotation, while they
hold resources, only when bound there and valid for its shape: extender/records.py) OR the
cores of reservations, masked to the node's shape. A reservation lives from the moment bind picks
the IDs until either the bind fails (released) or the pod watch shows the pod bound with its
annotation (the pod record then carries the usage), or the pod goes away. Keeping it until the
watch catches up closes the window in which a lagging watch would show the cores free.

Writers hold the lock and replace immutable NodeView entries; filter and prioritize read the
`nodes` dict without locking (single dict reads are atomic in CPython), so a filter over
thousands of nodes never waits on the watch threads.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..allocator import choose_all, mask
from ..objects import for_each_object
from ..pods import ALLOCATION, INSTANCE_TYPE_LABEL, ContainerAllocation, ContainerRequest
from ..topology import Shape
from .changelog import ChangeLog
from .fit import NodeClasses
from .holdings import Holdings, Reservation, Unavailable
from .podrecords import RecordBook
from .records import NO_CAPACITY, UNKNOWN_NODE, PodUse, annotations_of, pod_uid, read_node
from .scoring import Supply


@dataclass(frozen=True, slots=True)
class NodeView:
    name: str
    shape: Shape | None
    problem: str | None  # why the node offers no Neuron capacity, when shape is None
    unhealthy: int  # device mask
    used: int  # core mask: pods and reservations
    cls: int  # the node's class in NodeClasses: nodes of one class share every verdict


class ClusterState:
    def __init__(
        self,
        instance_type_label: str = INSTANCE_TYPE_LABEL,
        clock: Callable[[], float] = time.monotonic,
        relist_grace: float = 60.0,
        max_classes: int = 50_000,
    ) -> None:
        self._lock = threading.RLock()
        # node name -> class, with the class table it indexes; read without the lock by filter
        # and prioritize, and replaced as one tuple when the table is rebuilt.
        self.index: tuple[dict[str, int], NodeClasses] = ({}, NodeClasses())
        self._max_classes = max_classes
        self._changes = ChangeLog()
        self.instance_type_label = instance_type_label
        self._clock = clock
        self._relist_grace = relist_grace
        self.nodes: dict[str, NodeView] = {}
        self._node_info: dict[str, tuple[Shape | None, str | None, int]] = {}
        self._pods: dict[str, PodUse] = {}  # the pods whose record counts
        self.records = RecordBook()  # every pod's record, usable or not
        self._reservations: dict[str, Reservation] = {}
        self._holdings = Holdings()
        self._supply: tuple[int, Supply | None] = (-1, None)
        # Called (under the lock) whenever a node gains room: cores freed, a device healthy
        # again, a Neuron node added. See extender/requeue.py.
        self.on_room: Callable[[], None] | None = None

    # --- derived views --------------------------------------------------------------------
    def _refresh(self, node: str) -> None:
        node_class, classes = self.index
        info = self._node_info.get(node)
        if info is None:
            self.nodes.pop(node, None)
            if node_class.pop(node, None) is not None:
                self._changes.log(node)
            return
        shape, problem, unhealthy = info
        used = self._holdings.used(node)
        if shape is not None:
            used &= (1 << shape.cores) - 1  # a record names no core outside its node
        old = self.nodes.get(node)
        if old and (old.shape, old.problem, old.unhealthy, old.used) == (*info[:3], used):
            return
        cls = classes.intern(shape, used, unhealthy, problem)
        self.nodes[node] = NodeView(node, shape, problem, unhealthy, used, cls)
        gained = shape is not None and (
            old is None
            or old.shape != shape
            or bool(old.used & ~used)
            or bool(old.unhealthy & ~unhealthy)
        )
        if gained and self.on_room is not None:
            self.on_room()
        if node_class.get(node) != cls:
            node_class[node] = cls
            self._changes.log(node)
        if len(classes) > self._max_classes:
            self._rebuild_classes()

    @property
    def version(self) -> int:
        return self._changes.version

    def changed_since(self, version: int) -> tuple[int, list[str]] | None:
        """(the current version, the nodes whose class changed after `version`), or None when
        the log no longer reaches back that far."""
        with self._lock:
            return self._changes.since(version)

    def _rebuild_classes(self) -> None:
        """Usage churn keeps minting classes; start a fresh table from the live nodes."""
        classes = NodeClasses()
        node_class = {}
        for name, v in list(self.nodes.items()):
            cls = classes.intern(v.shape, v.used, v.unhealthy, v.problem)
            self.nodes[name] = replace(v, cls=cls)
            node_class[name] = cls
        self.index = (node_class, classes)
        self._changes.reset()

    def _hold(self, node: str, holder: tuple[str, str], cores: int | None) -> None:
        self._holdings.set(node, holder, cores)
        self._refresh(node)

    # --- nodes ----------------------------------------------------------------------------
    def _shape_of(self, node: str) -> Shape | None:
        info = self._node_info.get(node)
        return info[0] if info is not None else None

    def _set_node(self, name: str, info: tuple[Shape | None, str | None, int] | None) -> None:
        before = self._shape_of(name)
        if info is None:
            self._node_info.pop(name, None)
        else:
            self._node_info[name] = info
        if self._shape_of(name) != before:
            # The records naming it were checked against the old shape (or none).
            for uid, use in self.records.revalidate(name, self._shape_of):
                self._set_pod(uid, use)
        self._refresh(name)

    def replace_nodes(self, items: Iterable[dict[str, Any]]) -> None:
        with self._lock:
            seen: dict[str, tuple[Shape | None, str | None, int]] = {}

            def read(obj: dict[str, Any]) -> None:
                name = obj["metadata"].get("name")
                if name:
                    seen[str(name)] = read_node(obj, self.instance_type_label)

            for_each_object(items, read, "nodes")
            for name in set(self._node_info) - set(seen):
                self._set_node(name, None)
            for name, info in seen.items():
                self._set_node(name, info)

    def apply_node(self, event: str, obj: dict[str, Any]) -> None:
        name = (obj.get("metadata") or {}).get("name")
        if not name:
            return
        with self._lock:
            info = None if event == "DELETED" else read_node(obj, self.instance_type_label)
            self._set_node(str(name), info)

    # --- pods -----------------------------------------------------------------------------
    def _set_pod(self, uid: str, use: PodUse | None) -> None:
        old = self._pods.get(uid)
        if old == use:
            return
        if old is not None:
            del self._pods[uid]
            self._hold(old.node, ("pod", uid), None)
        if use is not None:
            self._pods[uid] = use
            self._hold(use.node, ("pod", uid), use.cores)

    def _drop_reservation(self, uid: str) -> None:
        r = self._reservations.pop(uid, None)
        if r is not None:
            self._hold(r.node, ("res", uid), None)

    def _observe(self, obj: dict[str, Any], gone: bool) -> None:
        uid = pod_uid(obj)
        self._set_pod(uid, self.records.judge(uid, None if gone else obj, self._shape_of))
        r = self._reservations.get(uid)
        if r is None:
            return
        if gone or _finished(obj):
            # Gone or finished holds nothing, even while its bind is in flight: confirm()
            # then finds no reservation to keep.
            self._drop_reservation(uid)
        elif r.confirmed_at is not None and (_bound(obj) or self._recorded(r)):
            # Once the watch shows the pod bound, its record (written with the Binding) is
            # authoritative.
            self._drop_reservation(uid)

    def _recorded(self, r: Reservation) -> bool:
        """Whether the pod's own record already carries exactly the reservation's cores."""
        p = self._pods.get(r.uid)
        return p is not None and p.node == r.node and p.cores == r.cores

    def replace_pods(self, items: Iterable[dict[str, Any]]) -> None:
        with self._lock:
            seen: set[str] = set()

            def observe(obj: dict[str, Any]) -> None:
                seen.add(pod_uid(obj))
                self._observe(obj, gone=False)

            for_each_object(items, observe, "pods")
            for uid in [u for u in self.records.known() if u not in seen]:
                self._set_pod(uid, self.records.judge(uid, None, self._shape_of))
            # A confirmed reservation whose pod is missing from a fresh list: the pod was
            # deleted while the watch was down. The grace covers a list that began before
            # the pod existed.
            now = self._clock()
            for uid, r in list(self._reservations.items()):
                if (
                    uid not in seen
                    and r.confirmed_at is not None
                    and now - r.confirmed_at > self._relist_grace
                ):
                    self._drop_reservation(uid)

    def apply_pod(self, event: str, obj: dict[str, Any]) -> None:
        uid = pod_uid(obj)
        if (
            event != "DELETED"
            and ALLOCATION not in annotations_of(obj)
            and uid not in self.records
            and uid not in self._reservations
        ):
            return  # fast path for the many pods that never asked the extender for anything
        with self._lock:
            for_each_object([obj], lambda o: self._observe(o, event == "DELETED"), "pods")

    # --- reservations ---------------------------------------------------------------------
    def reserve(
        self, uid: str, key: str, node: str, requests: Sequence[ContainerRequest]
    ) -> Reservation:
        """Pick and hold cores for every container of the pod on `node`. A pod that already
        holds a valid set there (a retried bind) keeps it."""
        with self._lock:
            existing = self._reservations.get(uid)
            if existing is not None:
                if existing.confirmed_at is None:
                    raise Unavailable(f"a bind of pod {key} is already in progress")
                if existing.node != node:
                    raise Unavailable(f"pod {key} is already bound to {existing.node}")
                return existing
            view = self.nodes.get(node)
            if view is None:
                raise Unavailable(UNKNOWN_NODE)
            if view.shape is None:
                raise Unavailable(view.problem or NO_CAPACITY)
            others = self._holdings.used(node, without=uid)
            own = self._pods.get(uid)
            if (
                own is not None
                and own.node == node
                and not own.cores & others
                and _same(own.allocations, requests)
            ):
                allocations = own.allocations
            else:
                placements = choose_all(
                    view.shape, [c.request for c in requests], others, view.unhealthy
                )
                allocations = tuple(
                    ContainerAllocation(c.container, p)
                    for c, p in zip(requests, placements, strict=True)
                )
            cores = 0
            for a in allocations:
                cores |= mask(a.placement.cores)
            r = Reservation(uid, key, node, cores, allocations)
            self._reservations[uid] = r
            self._hold(node, ("res", uid), cores)
            return r

    def confirm(self, r: Reservation) -> None:
        """The Binding exists: keep the reservation until the watch shows the pod bound."""
        with self._lock:
            if self._reservations.get(r.uid) is r:
                r.confirmed_at = self._clock()
                # The watch may have shown our annotation before the Binding returned.
                if self._recorded(r):
                    self._drop_reservation(r.uid)

    def release(self, r: Reservation) -> None:
        with self._lock:
            if self._reservations.get(r.uid) is r:
                self._drop_reservation(r.uid)

    # --- reading --------------------------------------------------------------------------
    def own_use(self, uid: str) -> tuple[str, int] | None:
        """Where the pod itself already holds cores (a retried pod), so that filter does not
        count the pod against itself."""
        r = self._reservations.get(uid)
        if r is not None:
            return r.node, r.cores
        p = self._pods.get(uid)
        return (p.node, p.cores) if p is not None else None

    def used_without(self, node: str, uid: str) -> int:
        """Cores held on `node` by anything but pod `uid` ("" for all of it)."""
        with self._lock:
            return self._holdings.used(node, without=uid)

    def supply(self) -> Supply:
        """How many Neuron nodes are of each class, which prioritize counts the cluster's room
        for each request kind over; one snapshot per state version."""
        with self._lock:
            node_class, classes = self.index
            version, snapshot = self._supply
            if version != self.version or snapshot is None or snapshot.classes is not classes:
                counts = {
                    cls: n
                    for cls, n in Counter(node_class.values()).items()
                    if classes.key(cls)[0] is not None
                }
                snapshot = Supply(classes, counts)
                self._supply = (self.version, snapshot)
            return snapshot

    def rejections(self) -> dict[str, int]:
        """Unusable records reported, by reason, since start (for metrics)."""
        with self._lock:
            return dict(self.records.rejections)

    def pod_uses(self) -> dict[str, PodUse]:
        with self._lock:
            return dict(self._pods)

    def reservations(self) -> dict[str, Reservation]:
        with self._lock:
            return dict(self._reservations)

    def holders(self, node: str) -> dict[tuple[str, str], int]:
        with self._lock:
            return self._holdings.of(node)

    def usage(self) -> dict[str, int]:
        """node -> used core mask, for every node anything is held on."""
        with self._lock:
            return self._holdings.usage()

    def totals(self) -> dict[str, int]:
        """Figures for metrics."""
        with self._lock:
            views = list(self.nodes.values())
            neuron = [v for v in views if v.shape is not None]
            return {
                "nodes": len(views),
                "neuron_nodes": len(neuron),
                "cores": sum(v.shape.cores for v in neuron if v.shape),
                "cores_used": sum(v.used.bit_count() for v in neuron),
                "pods": len(self._pods),
                "reservations": len(self._reservations),
            }


def _bound(obj: dict[str, Any]) -> bool:
    spec = obj.get("spec")
    return isinstance(spec, dict) and bool(spec.get("nodeName"))


def _finished(obj: dict[str, Any]) -> bool:
    status = obj.get("status")
    return isinstance(status, dict) and status.get("phase") in ("Succeeded", "Failed")


def _same(allocations: Sequence[ContainerAllocation], requests: Sequence[ContainerRequest]) -> bool:
    if len(allocations) != len(requests):
        return False
    return all(
        a.container == r.container
        and a.placement.resource == r.request.resource
        and len(a.placement.ids) == r.request.count
        for a, r in zip(allocations, requests, strict=True)
    )
