"""Who holds which cores: on device-plugin nodes from the pods' records (pods.read_record, the
one reader of them), on DRA nodes from the ResourceClaims' allocations and who they are
reserved for. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from neuron_k8s.dra.devices import device_index
from neuron_k8s.dra.devicesets import device_set_of, is_device_set
from neuron_k8s.dra.partitions import core_set_of, is_core_set
from neuron_k8s.pods import read_record
from neuron_k8s.topology import Shape

DEVICE_PLUGIN = "device-plugin"
DRA = "dra"


@dataclass(frozen=True)
class Holding:
    """One container's (or one claim's) set on one node. `devices` are the devices its cores
    touch; `what` is the resource it asked for, or the DRA device names it was given."""

    namespace: str
    pod: str  # "" for a claim that is allocated but reserved for no pod
    container: str  # "" when no container names the claim
    node: str
    cores: tuple[int, ...]
    devices: tuple[int, ...]
    what: str
    claim: str = ""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.pod or self.claim}"


@dataclass(frozen=True)
class Unreadable:
    """A pod or claim whose record cannot be used: shown as such, never breaking the others."""

    namespace: str
    name: str
    node: str
    reason: str


def meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    m = obj.get("metadata")
    return m if isinstance(m, Mapping) else {}


# Objects decoded from JSON are dicts: testing for dict, not Mapping, is several times faster
# (an ABC check per field), which counts over every pod and claim of a large cluster.
def dig(obj: Any, *path: str) -> Any:
    """obj[path[0]][path[1]]... or None where a step is missing or not an object."""
    for step in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(step)
    return obj


def items(value: Any) -> list[Mapping[str, Any]]:
    """The objects of a list field, ignoring anything that is not a list of objects."""
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, dict)]


def device_plugin_holdings(pod: Mapping[str, Any], shape: Shape, node: str) -> list[Holding]:
    """The sets of a pod bound to a device-plugin node, from its record; [] without one.
    Raises pods.BadRecord (with the reason) for a record that cannot be used."""
    record = read_record(pod, shape, node)
    if record is None:
        return []
    m = meta(pod)
    return [
        Holding(
            str(m.get("namespace", "")),
            str(m.get("name", "")),
            a.container,
            node,
            a.placement.cores,
            a.placement.devices,
            a.placement.resource.value,
        )
        for a in record.allocations
    ]


def dra_cores(device: str, shape: Shape) -> range:
    """The cores a DRA device of this driver stands for: a whole device, a core set or a
    device set. ValueError for a name that is none of them or lies outside the shape."""
    if is_core_set(device):
        cores = core_set_of(device).cores
    elif is_device_set(device):
        cores = device_set_of(device).cores(shape)
    else:
        index = device_index(device)
        if index >= shape.devices:
            raise ValueError(f"{device} is not on {shape.name} ({shape.devices} devices)")
        cores = shape.cores_of(index)
    if cores.stop > shape.cores:
        raise ValueError(f"{device} is not on {shape.name} ({shape.cores} cores)")
    return cores


def claim_containers(pod: Mapping[str, Any], claim: str) -> dict[str, list[str]]:
    """Which containers of the pod use the ResourceClaim `claim`, per request name ("*": the
    whole claim): from the containers' `resources.claims`, or, for a claim the scheduler made
    for an extended resource, from the pod's `extendedResourceClaimStatus`."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    names = {
        str(s.get("name"))
        for s in items(dig(status, "resourceClaimStatuses"))
        if s.get("resourceClaimName") == claim
    }
    names |= {
        str(s.get("name"))
        for s in items(dig(spec, "resourceClaims"))
        if s.get("resourceClaimName") == claim
    }
    out: dict[str, list[str]] = {}
    for c in items(dig(spec, "initContainers")) + items(dig(spec, "containers")):
        for use in items(dig(c, "resources", "claims")):
            if use.get("name") in names:
                out.setdefault(str(use.get("request") or "*"), []).append(str(c.get("name")))
    extended = dig(status, "extendedResourceClaimStatus")
    if isinstance(extended, Mapping) and extended.get("resourceClaimName") == claim:
        for m in items(extended.get("requestMappings")):
            out.setdefault(str(m.get("requestName")), []).append(str(m.get("containerName")))
    return out


def _container_of(users: Mapping[str, list[str]], request: str) -> str:
    found = users.get(request.split("/")[0]) or users.get("*") or []
    return ",".join(dict.fromkeys(found))


def claim_holdings(
    claim: Mapping[str, Any],
    driver: str,
    shapes: Mapping[str, Shape],
    pods: Mapping[tuple[str, str], Mapping[str, Any]],
) -> list[Holding]:
    """The sets a ResourceClaim's allocation gives on DRA nodes of `shapes` (node -> shape),
    one per pod it is reserved for and request it has (the claim alone when reserved for
    none). `pods` maps (namespace, name) to the pod. Raises ValueError for a result naming a
    device of our driver that cannot be on its node."""
    m = meta(claim)
    namespace, name = str(m.get("namespace", "")), str(m.get("name", ""))
    per_request: dict[tuple[str, str], tuple[set[int], list[str]]] = {}
    for r in items(dig(claim, "status", "allocation", "devices", "results")):
        node = str(r.get("pool", ""))
        if r.get("driver") != driver or node not in shapes:
            continue
        device = str(r.get("device", ""))
        cores, names = per_request.setdefault((node, str(r.get("request", ""))), (set(), []))
        cores.update(dra_cores(device, shapes[node]))
        names.append(device)
    users = [
        str(u.get("name", ""))
        for u in items(dig(claim, "status", "reservedFor"))
        if u.get("resource") == "pods"
    ] or [""]
    out = []
    for pod_name in users:
        pod = pods.get((namespace, pod_name), {})
        containers = claim_containers(pod, name) if pod else {}
        for (node, request), (cores, names) in per_request.items():
            shape = shapes[node]
            held = tuple(sorted(cores))
            out.append(
                Holding(
                    namespace,
                    pod_name,
                    _container_of(containers, request),
                    node,
                    held,
                    tuple(sorted({shape.device_of(c) for c in held})),
                    ",".join(names),
                    name,
                )
            )
    return out


def pods_by_name(pods: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], Mapping[str, Any]]:
    return {(str(meta(p).get("namespace", "")), str(meta(p).get("name", ""))): p for p in pods}
