"""The pods bound to this node, from a watch (a Reflector): what each asks for, the sets
recorded on it, and whether the kubelet has started it; and the reconciler's writes to them
(single-key merge patches with the pod's uid)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

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
    read_allocation,
    read_aws_ids,
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

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def allocated(self) -> bool:
        return dict(self.record).get(NEURON_ALLOCATED) == "true"

    def planned(self, container: str) -> ContainerAllocation | None:
        return next((a for a in self.plan or () if a.container == container), None)


def _fits(shape: Shape, allocation: ContainerAllocation) -> bool:
    p = allocation.placement
    limit = shape.devices if p.resource.whole_devices else shape.cores
    return bool(p.ids) and all(0 <= i < limit for i in p.ids) and max(p.cores) < shape.cores


def node_pod(obj: Mapping[str, Any], shape: Shape) -> NodePod:
    """What the plugin needs of a pod object. A pod whose requests or recorded sets cannot be
    read is kept with what could be read (logged): the kubelet may still admit it."""
    meta = obj.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    where = f"{meta.get('namespace')}/{meta.get('name')}"
    try:
        requests = tuple(container_requests(obj))
    except BadPod as err:
        log.warning("pod requests unreadable", pod=where, error=str(err))
        requests = ()
    plan = None
    try:
        found = read_allocation(obj)
        sets = found[1] if found else read_aws_ids(obj, shape)
        plan = tuple(sets) if sets is not None else None
    except (BadPod, ValueError) as err:
        log.warning("pod allocation unreadable", pod=where, error=str(err))
    if plan is not None and not all(_fits(shape, a) for a in plan):
        log.warning("pod allocation outside this node's shape", pod=where, shape=shape.name)
        plan = None
    status = obj.get("status") or {}
    try:
        alloc_time = int(str(annotations.get(NEURON_ALLOC_TIME, "0")))
    except ValueError:
        alloc_time = 0
    return NodePod(
        uid=str(meta.get("uid") or where),
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        requests=requests,
        plan=plan,
        record=tuple((k, str(annotations[k])) for k in RECORD_KEYS if k in annotations),
        holds=holds_resources(obj),
        started=bool(status.get("containerStatuses") or status.get("initContainerStatuses")),
        alloc_time=alloc_time,
        created=str(meta.get("creationTimestamp", "")),
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
        if old != pod:
            self._on_change(old, pod)

    def _on_synced(self, items: list[dict[str, Any]]) -> None:
        fresh = {p.uid: p for p in (node_pod(obj, self._shape) for obj in items)}
        for uid in set(self.pods()) - set(fresh):
            self._set(uid, None)
        for uid, pod in fresh.items():
            self._set(uid, pod)

    def _on_event(self, kind: str, obj: dict[str, Any]) -> None:
        pod = node_pod(obj, self._shape)
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
