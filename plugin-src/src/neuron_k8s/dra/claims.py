"""What a prepared claim gives its containers, read from the ResourceClaim's allocation: which
of this node's devices each request got, the logical NeuronCore size its opaque `NeuronConfig`
asks for (AWS's `neuron.aws.com/v1`), and the cores that makes visible. Pure: no I/O.

Core numbering is the device plugin's: device d holds cores d*c .. d*c+c-1 with c cores per
device, so NEURON_RT_VISIBLE_CORES means the same on both paths.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from neuron_k8s.topology import TRN2_PHYSICAL_CORES, Rule, Shape, lnc_cores_per_device

from .devices import device_index, device_name
from .devicesets import DeviceSet, device_set_of, is_device_set
from .partitions import CoreSet, core_set_of, is_core_set

CONFIG_API_VERSION = "neuron.aws.com/v1"
CONFIG_KIND = "NeuronConfig"
# The scheduler marks the claims it makes for pods that ask for an extended resource (KEP-5004).
EXTENDED_RESOURCE_CLAIM = "resource.kubernetes.io/extended-resource-claim"


class ClaimError(ValueError):
    """The claim cannot be prepared on this node; the message says why, for the pod's events."""


@dataclass(frozen=True)
class Request:
    """One request of a claim and the devices of this node it was given."""

    name: str
    devices: tuple[int, ...]  # whole devices
    lnc: int | None  # the NeuronConfig's logicalNeuronCore, None when the claim sets none
    core_sets: tuple[CoreSet, ...] = ()  # core partitions (partitions.py)
    device_sets: tuple[DeviceSet, ...] = ()  # runs of adjacent devices (devicesets.py)

    @property
    def device_names(self) -> list[str]:
        """The allocated devices' names, whole devices first."""
        return (
            [device_name(d) for d in self.devices]
            + [cs.name for cs in self.core_sets]
            + [ds.name for ds in self.device_sets]
        )

    def partitions(self, shape: Shape) -> list[CoreSet]:
        """Its core sets and device sets, each as the cores it holds."""
        runs = [CoreSet(ds.cores(shape).start, len(ds.cores(shape))) for ds in self.device_sets]
        return list(self.core_sets) + runs


def _config_lnc(config: Mapping[str, Any], driver: str) -> tuple[Sequence[str], int] | None:
    opaque = config.get("opaque") or {}
    if opaque.get("driver") != driver:
        return None
    params = opaque.get("parameters") or {}
    if params.get("apiVersion") != CONFIG_API_VERSION or params.get("kind") != CONFIG_KIND:
        raise ClaimError(
            f"opaque config for {driver} must be apiVersion {CONFIG_API_VERSION}, "
            f"kind {CONFIG_KIND}; got {params.get('apiVersion')!r}, {params.get('kind')!r}"
        )
    unknown = sorted(set(params) - {"apiVersion", "kind", "logicalNeuronCore"})
    if unknown:
        raise ClaimError(f"NeuronConfig has unknown fields: {', '.join(unknown)}")
    lnc = params.get("logicalNeuronCore", 1)
    if lnc not in (1, 2) or isinstance(lnc, bool):
        raise ClaimError(f"NeuronConfig logicalNeuronCore must be 1 or 2, got {lnc!r}")
    return list(config.get("requests") or []), int(lnc)


def requests(claim: Mapping[str, Any], driver: str, pool: str) -> list[Request]:
    """The claim's requests with devices of `driver` in `pool` (this node), in allocation order.
    Config from the class comes first and the claim's own after it, so the claim's wins."""
    allocation = (claim.get("status") or {}).get("allocation")
    if not allocation:
        raise ClaimError("the claim is not allocated yet")
    found: dict[str, list[int]] = {}
    sets: dict[str, list[CoreSet]] = {}
    runs: dict[str, list[DeviceSet]] = {}
    for result in (allocation.get("devices") or {}).get("results") or []:
        if result.get("driver") != driver or result.get("pool") != pool:
            continue
        device = str(result.get("device"))
        # A subrequest of a prioritized list is reported as <request>/<subrequest>.
        name = str(result.get("request", "")).split("/", 1)[0]
        found.setdefault(name, [])
        try:
            if is_core_set(device):
                sets.setdefault(name, []).append(core_set_of(device))
            elif is_device_set(device):
                runs.setdefault(name, []).append(device_set_of(device))
            else:
                found[name].append(device_index(device))
        except ValueError as err:
            raise ClaimError(str(err)) from None
    if not found:
        raise ClaimError(f"the claim has no {driver} devices on {pool}")
    lnc: dict[str, int] = {}
    configs = (allocation.get("devices") or {}).get("config") or []
    for source in ("FromClass", "FromClaim"):
        for config in configs:
            if config.get("source") != source:
                continue
            parsed = _config_lnc(config, driver)
            if parsed is None:
                continue
            names, value = parsed
            for name in names or found:
                lnc[name.split("/", 1)[0]] = value
    return [
        Request(
            name,
            tuple(found[name]),
            lnc.get(name),
            tuple(sets.get(name, ())),
            tuple(runs.get(name, ())),
        )
        for name in found
    ]


def cores_per_device(shape: Shape, request: Request) -> int:
    """How many logical cores each device has for this request. A logical NeuronCore size is a
    trn2 setting; elsewhere only 1 is meaningful."""
    if request.lnc is None:
        return shape.cores_per_device
    if (shape.instance_type or "").startswith("trn2"):
        return lnc_cores_per_device(request.lnc)
    if request.lnc != 1:
        raise ClaimError(
            f"logicalNeuronCore {request.lnc} applies to trn2 ({TRN2_PHYSICAL_CORES} "
            f"physical cores per device); {shape.name} has 1 core per logical core"
        )
    return shape.cores_per_device


def visible_cores(shape: Shape, request: Request) -> list[int]:
    """The cores a request's devices and core sets make visible, numbered in the request's
    logical NeuronCore size. Core sets and device sets are numbered in the node's own size,
    so a claim cannot change it."""
    per_device = cores_per_device(shape, request)
    partitions = request.partitions(shape)
    if partitions and per_device != shape.cores_per_device:
        raise ClaimError(
            f"logicalNeuronCore {request.lnc} differs from this node's, whose core sets and "
            f"device sets have {shape.cores_per_device} cores per device; ask for whole "
            "devices to change it"
        )
    for d in request.devices:
        if not 0 <= d < shape.devices:
            raise ClaimError(f"device {d} is not on this node ({shape.devices} devices)")
    cores = [d * per_device + k for d in request.devices for k in range(per_device)]
    for cs, name in zip(partitions, request.device_names[len(request.devices) :], strict=True):
        if cs.cores[-1] >= shape.cores:
            kind = "device set" if is_device_set(name) else "core set"
            raise ClaimError(f"{kind} {name} is not on this node ({shape.cores} cores)")
        cores.extend(cs.cores)
    if len(set(cores)) != len(cores):
        raise ClaimError(f"request {request.name} was given some cores twice")
    return sorted(cores)


def spanned_devices(shape: Shape, request: Request) -> tuple[int, ...]:
    """The devices whose nodes a request's containers need: its whole devices and those its
    core sets lie on."""
    spanned = set(request.devices)
    for cs in request.partitions(shape):
        spanned.update(shape.device_of(c) for c in cs.cores)
    return tuple(sorted(spanned))


def claim_cores(shape: Shape, requests: Sequence[Request]) -> tuple[list[int], int | None]:
    """The cores and logical NeuronCore size a container that uses the whole claim sees: the
    union of its requests' cores, gaps included: the driver cannot see whether any container
    uses the whole claim (one container per request is a normal pod), so a union that is not
    one range is the runtime's to refuse, as for any claim of devices that are not adjacent.
    Only what no container could use together is refused (ClaimError): two logical NeuronCore
    sizes, a core given twice."""
    sizes = {cores_per_device(shape, r) for r in requests}
    if len(sizes) > 1:
        raise ClaimError(
            "its requests ask for different logical NeuronCore sizes "
            f"({', '.join(f'{r.name}: {r.lnc}' for r in requests)}), which one container "
            "cannot use together; give each size a claim of its own"
        )
    cores = sorted(c for r in requests for c in visible_cores(shape, r))
    if len(set(cores)) != len(cores):
        raise ClaimError("its requests were given some cores twice")
    lncs = {r.lnc for r in requests if r.lnc is not None}
    return cores, (lncs.pop() if lncs else None)


def mapped_claim_error(
    shape: Shape, claim: Mapping[str, Any], reqs: Sequence[Request]
) -> str | None:
    """Why the devices the scheduler gave a pod that asks for `aws.amazon.com/neuron: N` (a
    claim it made through the DeviceClass's extendedResourceName) cannot serve it, or None.
    Such a claim can only say "N devices of the class", so the scheduler picks any N; the
    runtime needs a set topology.py accepts (contiguous; on the trn torus an aligned block of
    1, 4, 8 or 16). Refusing at prepare leaves the pod with this sentence in its events,
    instead of a container whose runtime fails (docs/dra.md)."""
    annotations = (claim.get("metadata") or {}).get("annotations") or {}
    if annotations.get(EXTENDED_RESOURCE_CLAIM) != "true":
        return None
    for req in reqs:
        devices = sorted(req.devices)
        if len(devices) < 2:
            continue
        first, count = devices[0], len(devices)
        if devices == list(range(first, first + count)) and first in shape.device_starts(count):
            continue
        valid = ", ".join(str(n) for n in reversed(shape.device_sizes()))
        kind = "aligned blocks" if shape.rule is Rule.ALIGNED else "adjacent devices"
        return (
            f"the scheduler gave this pod's {count} Neuron devices as {devices}, which the "
            f"Neuron runtime cannot use together: {shape.name} serves {valid} {kind} "
            "(docs/dra.md). A pod that asks for more than one device through the extended "
            "resource gets any free devices; use a ResourceClaimTemplate with a device set "
            "or matchAttribute instead"
        )
    return None
