"""The pods bound to this node, from a watch (a Reflector): what each asks for, the sets
recorded on it, and whether the kubelet has started it; and the reconciler's writes to them
(single-key merge patches with the pod's uid). Pod owners can write the record keys
(docs/security.md): a record is used only once pods.read_record has validated it against this
node, and no pod object, however malformed, makes a callback raise."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from neuron_k8s.allocator import Resource, Stage
from neuron_k8s.kube import ApiError, KubeClient, Reflector
from neuron_k8s.logs import get_logger
from neuron_k8s.pods import (
    ALLOCATION,
    AWS_NEURON_IDS,
    NEURON_ALLOC_TIME,
    NEURON_ALLOCATED,
    BadPod,
    ContainerAllocation,
    ContainerRequest,
    container_requests,
    holds_resources,
    merge_patch,
    read_record,
)
from neuron_k8s.topology import Shape

from .metrics import Metrics

log = get_logger("deviceplugin.pods")

RECORD_KEYS = (AWS_NEURON_IDS, ALLOCATION, NEURON_ALLOCATED, NEURON_ALLOC_TIME)


@dataclass(frozen=True)
class NodePod:
    uid: str
    namespace: str
    name: str
    requests: tuple[ContainerRequest, ...]  # the kubelet's order
    plan: tuple[ContainerAllocation, ...] | None  # the sets recorded on the pod
    record: tuple[tuple[str, str], ...]  # the values of RECORD_KEYS it carries
    holds: bool  # not finished: its containers may hold devices
    started: bool  # the kubelet has reported container states: it is past admission
    alloc_time: int
    created: str
    # Why the pod's record (or its requests) cannot be used, with the metric's reason label;
    # PodView logs it once per record.
    problem: tuple[str, str] | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def allocated(self) -> bool:
        return dict(self.record).get(NEURON_ALLOCATED) == "true"

    def planned(self, container: str) -> ContainerAllocation | None:
        return next((a for a in self.plan or () if a.container == container), None)

    def kept(self) -> dict[str, dict[Resource, tuple[int, ...]]]:
        """The sets the record gives the containers that keep theirs while the pod runs
        (sidecars and app containers), while it may hold any."""
        out: dict[str, dict[Resource, tuple[int, ...]]] = {}
        for c in self.requests if self.holds else ():
            planned = self.planned(c.container)
            if c.request.stage is not Stage.INIT and planned is not None:
                out[c.container] = {planned.placement.resource: planned.placement.ids}
        return out


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def node_pod(obj: Mapping[str, Any], shape: Shape, node: str | None) -> NodePod:
    """What the plugin needs of a pod object; never raises. A pod whose requests or record
    cannot be used is kept with what could be read, and `problem` says why: the kubelet may
    still admit it. With `node`, a record naming another node is not used."""
    obj = _mapping(obj)
    meta = _mapping(obj.get("metadata"))
    annotations = _mapping(meta.get("annotations"))
    where = f"{meta.get('namespace')}/{meta.get('name')}"
    problem = None
    try:
        requests = tuple(container_requests(obj))
    except BadPod as err:
        problem, requests = (f"the pod's requests are unreadable: {err}", "requests"), ()
    plan = None
    if problem is None:
        try:
            record = read_record(obj, shape, node=node)
            plan = record.allocations if record is not None else None
        except BadPod as err:  # BadRecord: anyone who may annotate the pod can write one
            reason = "allocation" if ALLOCATION in annotations else "aws_neuron_ids"
            problem = (str(err), reason)
    try:
        alloc_time = int(str(annotations.get(NEURON_ALLOC_TIME, "0"))[:32])
    except ValueError:
        alloc_time = 0
    status = _mapping(obj.get("status"))
    return NodePod(
        uid=str(meta.get("uid") or where),
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        requests=requests,
        plan=plan,
        record=tuple((k, str(annotations[k])) for k in RECORD_KEYS if k in annotations),
        holds=holds_resources({"status": status}),
        started=bool(status.get("containerStatuses") or status.get("initContainerStatuses")),
        alloc_time=alloc_time,
        created=str(meta.get("creationTimestamp", "")),
        problem=problem,
    )


class PodView:
    """on_change(old, new) runs on the watch thread after every change of a NodePod (None:
    added or gone)."""

    def __init__(
        self,
        client: KubeClient,
        node: str,
        shape: Shape,
        metrics: Metrics,
        on_change: Callable[[NodePod | None, NodePod | None], None],
    ) -> None:
        self.client = client
        self.node = node
        self._shape = shape
        self._metrics = metrics
        self._on_change = on_change
        self._pods: dict[str, NodePod] = {}
        # uid -> the record values whose problem was last reported: logged once, not per event
        self._reported: dict[str, tuple[tuple[str, str], ...]] = {}
        self._changed = threading.Condition()
        self._reflector = Reflector(
            client,
            "/api/v1/pods",
            {"fieldSelector": f"spec.nodeName={node}"},
            self._on_event,
            self._on_synced,
            name="pods",
        )

    @property
    def synced(self) -> bool:
        return self._reflector.synced.is_set()

    def start(self) -> None:
        self._reflector.start()

    def stop(self) -> None:
        self._reflector.stop()
        with self._changed:
            self._changed.notify_all()

    def pods(self) -> dict[str, NodePod]:
        """Every pod on the node by uid (a copy: a node has at most a few hundred)."""
        with self._changed:
            return dict(self._pods)

    def wait(self, until: Callable[[dict[str, NodePod]], bool], timeout: float) -> bool:
        """Wait for the watch (never the API) until `until(pods)` holds, at most `timeout`."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not (self.synced and until(self._pods)):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            return True

    def _set(self, uid: str, pod: NodePod | None) -> None:
        with self._changed:
            old = self._pods.pop(uid, None)
            if pod is not None:
                self._pods[uid] = pod
            self._changed.notify_all()
        self._report(uid, pod)
        if old != pod:
            try:
                self._on_change(old, pod)
            except Exception as err:  # one pod must never stop the watch
                self._metrics.errors.labels("pod_view").inc()
                log.error("pod change not applied", pod=uid, error=str(err), exc_info=True)

    def _report(self, uid: str, pod: NodePod | None) -> None:
        if pod is None or pod.problem is None:
            self._reported.pop(uid, None)
            return
        if self._reported.get(uid) == pod.record:
            return
        self._reported[uid] = pod.record
        message, reason = pod.problem
        self._metrics.unusable_records.labels(reason).inc()
        log.warning("pod record not used", pod=pod.key, reason=reason, error=message[:300])

    def _node_pod(self, obj: Any) -> NodePod:
        return node_pod(obj, self._shape, self.node)

    def _on_synced(self, items: list[dict[str, Any]]) -> None:
        fresh = {p.uid: p for p in map(self._node_pod, items)}
        for uid in set(self.pods()) - set(fresh):
            self._set(uid, None)
        for uid, pod in fresh.items():
            self._set(uid, pod)

    def _on_event(self, kind: str, obj: dict[str, Any]) -> None:
        pod = self._node_pod(obj)
        self._set(pod.uid, None if kind == "DELETED" else pod)

    def patch(self, pod: NodePod, annotations: Mapping[str, str]) -> bool:
        """Merge-patch single annotation keys of this incarnation of the pod (the uid makes
        the API server refuse the patch for a pod recreated under the same name)."""
        body = merge_patch(dict(annotations))
        body["metadata"]["uid"] = pod.uid
        try:
            self.client.merge_patch(f"/api/v1/namespaces/{pod.namespace}/pods/{pod.name}", body)
        except ApiError as err:
            self._metrics.errors.labels("api_patch").inc()
            log.warning("patching pod annotations failed", pod=pod.key, error=str(err))
            return False
        return True
