"""Choosing contiguous Neuron cores and devices, and scoring how well a choice packs. Pure.

One node's usage is a set of used cores (a device handed out whole uses all of its cores), so
the two resources are accounted together by construction: a device with any core in use cannot
be handed out whole, and the cores of a device handed out whole are not free. Sets are int
bitmasks internally (bit i = core i), which keeps the extender's filter over thousands of nodes
cheap and makes results memoisable.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from .topology import Rule, Shape


class Resource(StrEnum):
    NEURON = "aws.amazon.com/neuron"
    NEURONCORE = "aws.amazon.com/neuroncore"
    # End of life since Neuron SDK 2.20; still accepted and treated as whole devices.
    NEURONDEVICE = "aws.amazon.com/neurondevice"

    @property
    def whole_devices(self) -> bool:
        return self is not Resource.NEURONCORE


RESOURCE_NAMES = frozenset(r.value for r in Resource)


class Stage(StrEnum):
    """When a container runs, which decides how the kubelet counts its devices: a regular
    init container's IDs are reused by the containers after it, a sidecar (an init container
    with restartPolicy Always) and an app container keep theirs."""

    INIT = "init"
    SIDECAR = "sidecar"
    APP = "app"


@dataclass(frozen=True)
class Request:
    """What one container asks for: `count` of one resource."""

    resource: Resource
    count: int
    stage: Stage = Stage.APP

    @property
    def kind(self) -> Request:
        """The request without its stage: what the workload mix counts."""
        return self if self.stage is Stage.APP else Request(self.resource, self.count)


@dataclass(frozen=True)
class Placement:
    """The exact set one container gets. `ids` are in the unit of the resource asked for."""

    resource: Resource
    ids: tuple[int, ...]
    cores: tuple[int, ...]
    devices: tuple[int, ...]


class NoFit(Exception):
    """No valid set is free; the message says why in words a user understands."""


def mask(indices: Iterable[int]) -> int:
    m = 0
    for i in indices:
        m |= 1 << i
    return m


def indices(m: int) -> tuple[int, ...]:
    out = []
    i = 0
    while m:
        if m & 1:
            out.append(i)
        m >>= 1
        i += 1
    return tuple(out)


def _run(start: int, length: int) -> int:
    return ((1 << length) - 1) << start


def _device_mask(shape: Shape, first: int, count: int) -> int:
    """Core mask of `count` devices starting at device `first`."""
    cpd = shape.cores_per_device
    return _run(first * cpd, count * cpd)


def unhealthy_core_mask(shape: Shape, unhealthy_devices: int) -> int:
    """Core mask of the cores that sit on unhealthy devices (given as a device mask)."""
    m = 0
    for d in indices(unhealthy_devices):
        if d < shape.devices:
            m |= _device_mask(shape, d, 1)
    return m


def _candidates(shape: Shape, request: Request) -> Iterator[int]:
    """Core masks of every topologically valid set for the request, ignoring usage."""
    if request.resource.whole_devices:
        for first in shape.device_starts(request.count):
            yield _device_mask(shape, first, request.count)
        return
    n = request.count
    if n < 1 or n > shape.cores:
        return
    cpd = shape.cores_per_device
    for start in range(shape.cores - n + 1):
        first, last = start // cpd, (start + n - 1) // cpd
        span = last - first + 1
        if shape.rule is Rule.ALIGNED and n != shape.cores:
            block = shape.block_for_span(span)
            if first // block != last // block:
                continue
        yield _run(start, n)


def _free_runs(flags: Sequence[bool]) -> list[int]:
    runs, current = [], 0
    for free in flags:
        if free:
            current += 1
        else:
            if current:
                runs.append(current)
            current = 0
    if current:
        runs.append(current)
    return runs


@lru_cache(maxsize=65536)
def quality(shape: Shape, blocked: int) -> tuple[int, ...]:
    """How much room a node keeps for future requests, given its blocked cores (used or on
    unhealthy devices). Compared as a tuple: more free placements of the largest sizes first,
    then more fully free devices, then the longest run of free cores."""
    cpd = shape.cores_per_device
    device_free = [not blocked & _device_mask(shape, d, 1) for d in range(shape.devices)]
    if shape.rule is Rule.ALIGNED:
        counts = [
            sum(all(device_free[first : first + size]) for first in range(0, shape.devices, size))
            for size in shape.device_sizes()
        ]
    else:
        runs = _free_runs(device_free)
        counts = [sum(r // size for r in runs) for size in shape.device_sizes()]
    core_runs = _free_runs([not blocked >> c & 1 for c in range(shape.devices * cpd)])
    return (*counts, max(core_runs, default=0))


def _span(shape: Shape, cores: int) -> int:
    cpd_mask = (1 << shape.cores_per_device) - 1
    return sum(1 for d in range(shape.devices) if cores >> (d * shape.cores_per_device) & cpd_mask)


def request_error(shape: Shape, request: Request) -> str | None:
    """Why the request can never be met on this shape, even empty; None when it can."""
    if request.resource.whole_devices:
        return shape.device_request_error(request.count)
    return shape.core_request_error(request.count)


@lru_cache(maxsize=65536)
def _choose(shape: Shape, blocked: int, request: Request, must_include: int) -> int | None:
    best_key, best = None, None
    for cand in _candidates(shape, request):
        if cand & blocked or cand & must_include != must_include:
            continue
        # Fewest devices first (pack cores), then the most room left, then the lowest index.
        key = (_span(shape, cand), tuple(-q for q in quality(shape, blocked | cand)), cand)
        if best_key is None or key < best_key:
            best_key, best = key, cand
    return best


def _describe_free(shape: Shape, blocked: int, request: Request) -> str:
    if request.resource.whole_devices:
        free = [not blocked & _device_mask(shape, d, 1) for d in range(shape.devices)]
        longest = max(_free_runs(free), default=0)
        return (
            f"no valid set of {request.count} contiguous free Neuron devices on {shape.name}: "
            f"{sum(free)} of {shape.devices} devices free, longest free run {longest}"
        )
    free = [not blocked >> c & 1 for c in range(shape.cores)]
    longest = max(_free_runs(free), default=0)
    return (
        f"no valid set of {request.count} contiguous free NeuronCores on {shape.name}: "
        f"{sum(free)} of {shape.cores} cores free, longest free run {longest}"
    )


def placement_of(shape: Shape, resource: Resource, cores: int) -> Placement:
    core_ids = indices(cores)
    devices = tuple(sorted({shape.device_of(c) for c in core_ids}))
    ids = devices if resource.whole_devices else core_ids
    return Placement(resource, ids, core_ids, devices)


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
        required |= _device_mask(shape, i, 1) if request.resource.whole_devices else 1 << i
    chosen = _choose(shape, blocked, request, required)
    if chosen is None:
        raise NoFit(_describe_free(shape, blocked, request))
    return placement_of(shape, request.resource, chosen)


def choose_all(
    shape: Shape,
    requests: Sequence[Request],
    used_cores: int = 0,
    unhealthy_devices: int = 0,
) -> list[Placement]:
    """Disjoint sets for every container of a pod, in the order of `requests` (the kubelet's
    order: init containers, then app containers). Raises NoFit with the reason.

    App containers alone are placed largest first, so that small ones fill the gaps around
    them. With init containers the kubelet's own rule decides (docs/architecture.md,
    "Init containers"): each container takes the IDs earlier regular init containers of the
    pod left for reuse first, so containers are placed in order and a set includes what it
    must reuse."""
    error = pod_error(requests)
    if error:
        raise NoFit(error)
    if all(r.stage is Stage.APP for r in requests):
        return _largest_first(shape, requests, used_cores, unhealthy_devices)
    placed: list[Placement] = []
    used = used_cores
    reusable: dict[Resource, int] = {}  # core masks of IDs left for reuse, per resource
    for r in requests:
        pool = reusable.get(r.resource, 0)
        if _id_count(shape, r.resource, pool) >= r.count:
            # pod_error() made sure the kubelet's pick is not left to chance.
            p = placement_of(shape, r.resource, _lowest(shape, r.resource, pool, r.count))
        else:
            p = choose(
                shape,
                r,
                used & ~pool,
                unhealthy_devices,
                must_include=placement_of(shape, r.resource, pool).ids,
            )
        placed.append(p)
        cores = mask(p.cores)
        used |= cores
        reusable[r.resource] = pool | cores if r.stage is Stage.INIT else pool & ~cores
    return placed


def pod_error(requests: Sequence[Request]) -> str | None:
    """Why the kubelet cannot be relied on to give a pod's containers contiguous sets, or None.
    A container that asks for fewer IDs than earlier regular init containers of the pod left
    for reuse gets a random subset of them from the kubelet, which need not be contiguous."""
    left: dict[Resource, int] = {}  # how many IDs are left for reuse, per resource
    for r in requests:
        pool = left.get(r.resource, 0)
        if 1 < r.count < pool:
            return (
                f"a container asks for {r.count} {r.resource.value} after init containers of "
                f"the same pod used {pool}: the kubelet would give it {r.count} of those {pool} "
                "at random, which need not be contiguous; ask for as many as the init "
                "containers, or for one"
            )
        if r.stage is Stage.INIT:
            left[r.resource] = max(pool, r.count)
        else:
            left[r.resource] = max(pool - r.count, 0)
    return None


def _largest_first(
    shape: Shape, requests: Sequence[Request], used_cores: int, unhealthy_devices: int
) -> list[Placement]:
    order = sorted(
        range(len(requests)),
        key=lambda i: (
            -requests[i].count
            * (shape.cores_per_device if requests[i].resource.whole_devices else 1),
            i,
        ),
    )
    placed: dict[int, Placement] = {}
    used = used_cores
    for i in order:
        p = choose(shape, requests[i], used, unhealthy_devices)
        placed[i] = p
        used |= mask(p.cores)
    return [placed[i] for i in range(len(requests))]


def _id_count(shape: Shape, resource: Resource, cores: int) -> int:
    if resource.whole_devices:
        return bin(cores).count("1") // shape.cores_per_device
    return bin(cores).count("1")


def _lowest(shape: Shape, resource: Resource, cores: int, count: int) -> int:
    """Core mask of the `count` lowest IDs (devices or cores) of a core mask."""
    ids = placement_of(shape, resource, cores).ids[:count]
    if resource.whole_devices:
        return mask(c for d in ids for c in shape.cores_of(d))
    return mask(ids)


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


@lru_cache(maxsize=4096)
def candidates(shape: Shape, request: Request) -> tuple[int, ...]:
    """Core masks of every topologically valid set for the request, ignoring usage. A request
    fits a node exactly when one of them is free of its blocked cores, which is far cheaper to
    test than choosing the best set: the extender's filter tests thousands of nodes."""
    return tuple(_candidates(shape, request))
