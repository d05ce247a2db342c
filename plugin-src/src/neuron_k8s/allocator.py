"""Choosing contiguous Neuron cores and devices, and scoring how well a choice packs. Pure.

The one place callers import from: the sets themselves (requests, placements, valid sets,
room left) live in coresets.py, the placement of a whole pod under the kubelet's reuse rules
in podplan.py; this module chooses one container's set and scores a pod's.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from .coresets import (
    RESOURCE_NAMES,
    NoFit,
    Placement,
    Request,
    Resource,
    Stage,
    candidates,
    describe_free,
    device_mask,
    indices,
    mask,
    placement_of,
    quality,
    ranked,
    request_error,
    unhealthy_core_mask,
)
from .podplan import choose_all, pod_error
from .topology import Shape

__all__ = [
    "RESOURCE_NAMES",
    "NoFit",
    "Placement",
    "Request",
    "Resource",
    "Stage",
    "candidates",
    "choose",
    "choose_all",
    "fits",
    "indices",
    "mask",
    "placement_of",
    "pod_error",
    "quality",
    "request_error",
    "score",
    "unhealthy_core_mask",
]


@lru_cache(maxsize=65536)
def _choose(shape: Shape, blocked: int, request: Request, must_include: int) -> int | None:
    best = ranked(shape, blocked, request, must_include)
    return best[0] if best else None


def choose(
    shape: Shape,
    request: Request,
    used_cores: int = 0,
    unhealthy_devices: int = 0,
    must_include: Iterable[int] = (),
) -> Placement:
    """The best free valid set for one request. `used_cores` is a core mask,
    `unhealthy_devices` a device mask, `must_include` IDs in the unit of the resource.
    Raises NoFit with the reason."""
    error = request_error(shape, request)
    if error:
        raise NoFit(error)
    blocked = used_cores | unhealthy_core_mask(shape, unhealthy_devices)
    required = 0
    for i in must_include:
        required |= device_mask(shape, i, 1) if request.resource.whole_devices else 1 << i
    chosen = _choose(shape, blocked, request, required)
    if chosen is None:
        raise NoFit(describe_free(shape, blocked, request))
    return placement_of(shape, request.resource, chosen)


def fits(
    shape: Shape,
    requests: tuple[Request, ...],
    used_cores: int = 0,
    unhealthy_devices: int = 0,
) -> str | None:
    """None when every request can be placed together; otherwise the reason why not."""
    try:
        choose_all(shape, requests, used_cores, unhealthy_devices)
    except NoFit as err:
        return str(err)
    return None


def score(
    shape: Shape, placements: Iterable[Placement], used_cores: int, unhealthy_devices: int
) -> int:
    """0-10, higher for the node where this placement fits most tightly (best fit): the share
    of the node's healthy cores in use afterwards. Packing busy nodes first keeps whole nodes
    and large blocks free for large requests."""
    unhealthy = unhealthy_core_mask(shape, unhealthy_devices)
    healthy = shape.cores - bin(unhealthy).count("1")
    if healthy <= 0:
        return 0
    after = used_cores & ~unhealthy
    for p in placements:
        after |= mask(p.cores)
    return round(10 * bin(after).count("1") / healthy)
