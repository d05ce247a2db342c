"""Which container holds the cores of each prepared claim, for the allocation metrics
(allocationmetrics.py): the checkpoint says what the kubelet prepared, the claim's
status.reservedFor which pods it serves, and the pod which of its containers use it (by a claim
reference, or through the scheduler's extended-resource mapping). Pods come from a watch of
this node's pods, never from an API call at scrape time or inside a kubelet call."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from neuron_k8s.allocationmetrics import DRA, ContainerCores, NodeAllocations
from neuron_k8s.kube import KubeClient, Reflector
from neuron_k8s.occupancy import mask_of
from neuron_k8s.topology import Shape

from .checkpoint import Checkpoint, Prepared
from .claimcache import ClaimCache
from .health import devices_under
from .partitions import core_set_of, is_core_set
from .prepare import WHOLE_CLAIM

Pod = Mapping[str, Any]


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def device_cores(shape: Shape, name: str) -> int:
    """The core mask (node numbering) a prepared device name holds: a whole device's cores, a
    core set's, a device set's; 0 for a name not on this node."""
    if is_core_set(name):
        cores = core_set_of(name).cores
        return mask_of(cores) if cores[-1] < shape.cores else 0
    devices = devices_under(shape, name)
    return mask_of(c for d in devices or () for c in shape.cores_of(d))


def request_cores(shape: Shape, record: Prepared) -> dict[str, int]:
    """Request name -> the cores its devices hold."""
    out: dict[str, int] = {}
    for d in record.devices:
        if d.request != WHOLE_CLAIM:
            out[d.request] = out.get(d.request, 0) | device_cores(shape, d.device)
    return out


def pod_claim_names(pod: Pod, claim: str) -> set[str]:
    """The pod's own names (spec.resourceClaims) for the ResourceClaim named `claim`."""
    generated = {
        str(s.get("name")): s.get("resourceClaimName")
        for s in map(_map, _list(_map(pod.get("status")).get("resourceClaimStatuses")))
    }
    out = set()
    for ref in map(_map, _list(_map(pod.get("spec")).get("resourceClaims"))):
        name = str(ref.get("name"))
        if ref.get("resourceClaimName") == claim or generated.get(name) == claim:
            out.add(name)
    return out


def container_cores(pod: Pod, claim: str, by_request: Mapping[str, int]) -> dict[str, int]:
    """Container name -> the cores of claim `claim` it uses: all of them when it references the
    whole claim, a request's when it names one."""
    everything = 0
    for cores in by_request.values():
        everything |= cores
    names = pod_claim_names(pod, claim)
    spec, status = _map(pod.get("spec")), _map(pod.get("status"))
    out: dict[str, int] = {}
    for c in map(_map, _list(spec.get("initContainers")) + _list(spec.get("containers"))):
        for ref in map(_map, _list(_map(c.get("resources")).get("claims"))):
            if ref.get("name") not in names:
                continue
            request = ref.get("request")
            cores = by_request.get(str(request), 0) if request else everything
            out[str(c.get("name"))] = out.get(str(c.get("name")), 0) | cores
    extended = _map(status.get("extendedResourceClaimStatus"))
    if extended.get("resourceClaimName") == claim:
        for m in map(_map, _list(extended.get("requestMappings"))):
            name = str(m.get("containerName"))
            out[name] = out.get(name, 0) | by_request.get(str(m.get("requestName")), 0)
    return out


def reserved_pods(claim: Mapping[str, Any] | None) -> list[str]:
    """Names of the pods the claim is reserved for."""
    status = _map(_map(claim).get("status"))
    return [
        str(r.get("name"))
        for r in map(_map, _list(status.get("reservedFor")))
        if r.get("resource") == "pods" and not r.get("apiGroup") and r.get("name")
    ]


def claim_holders(
    shape: Shape,
    record: Prepared,
    claim: Mapping[str, Any] | None,
    pods: Mapping[tuple[str, str], Pod],
) -> list[ContainerCores]:
    """Who holds one prepared claim's cores. The pod is named with no container when none of
    its containers can be matched (the watch has not caught up), and nothing is named when the
    claim is gone from the cache: the cores stay counted as held either way."""
    by_request = request_cores(shape, record)
    everything = 0
    for cores in by_request.values():
        everything |= cores
    out = []
    for name in reserved_pods(claim) or [""]:
        pod = pods.get((record.namespace, name))
        used = container_cores(pod, record.name, by_request) if pod is not None else {}
        if not used:
            out.append(ContainerCores(record.namespace, name, "", everything))
        out += [ContainerCores(record.namespace, name, c, m) for c, m in sorted(used.items())]
    return out


def node_allocations(
    node: str,
    shape: Shape,
    checkpoint: Checkpoint,
    claims: ClaimCache,
    pods: Callable[[], Mapping[tuple[str, str], Pod]],
    unhealthy: Callable[[], Iterable[int]],
) -> NodeAllocations:
    known = pods()
    holders: list[ContainerCores] = []
    for uid in sorted(checkpoint.uids()):
        record = checkpoint.get(uid)
        if record is not None:
            holders += claim_holders(shape, record, claims.get(uid), known)
    return NodeAllocations(node, DRA, shape, tuple(holders), frozenset(unhealthy()))


def watched(pod: dict[str, Any]) -> dict[str, Any]:
    """What the watch keeps of a pod: its names and claim references."""
    meta, spec, status = _map(pod.get("metadata")), _map(pod.get("spec")), _map(pod.get("status"))

    def containers(field: str) -> list[dict[str, Any]]:
        return [
            {"name": c.get("name"), "resources": {"claims": _map(c.get("resources")).get("claims")}}
            for c in map(_map, _list(spec.get(field)))
        ]

    return {
        "metadata": {k: meta.get(k) for k in ("name", "namespace", "uid", "resourceVersion")},
        "spec": {
            "resourceClaims": spec.get("resourceClaims"),
            "initContainers": containers("initContainers"),
            "containers": containers("containers"),
        },
        "status": {
            "resourceClaimStatuses": status.get("resourceClaimStatuses"),
            "extendedResourceClaimStatus": status.get("extendedResourceClaimStatus"),
        },
    }


class NodePods:
    """The pods bound to this node, by (namespace, name), kept by a watch."""

    def __init__(self) -> None:
        self._pods: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._reflector: Reflector | None = None

    @staticmethod
    def _key(pod: Mapping[str, Any]) -> tuple[str, str]:
        meta = _map(pod.get("metadata"))
        return str(meta.get("namespace", "")), str(meta.get("name", ""))

    def replace(self, pods: list[dict[str, Any]]) -> None:
        with self._lock:
            self._pods = {self._key(p): p for p in pods}

    def apply(self, kind: str, pod: dict[str, Any]) -> None:
        with self._lock:
            if kind == "DELETED":
                self._pods.pop(self._key(pod), None)
            else:
                self._pods[self._key(pod)] = pod

    def pods(self) -> dict[tuple[str, str], dict[str, Any]]:
        with self._lock:
            return dict(self._pods)

    def start(self, client: KubeClient, node: str) -> None:
        self._reflector = Reflector(
            client,
            "/api/v1/pods",
            {"fieldSelector": f"spec.nodeName={node}"},
            self.apply,
            self.replace,
            name="pods",
            transform=watched,
        )
        self._reflector.start()

    def stop(self) -> None:
        if self._reflector is not None:
            self._reflector.stop()
