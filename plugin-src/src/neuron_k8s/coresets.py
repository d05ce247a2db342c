"""Sets of Neuron cores as int bitmasks (bit i = core i): the requests and placements they
stand for, which sets of one request are valid on a shape, and how much room a usage leaves.
Pure.

One node's usage is a set of used cores (a device handed out whole uses all of its cores), so
the two resources are accounted together by construction: a device with any core in use cannot
be handed out whole, and the cores of a device handed out whole are not free. Bitmasks keep the
extender's filter over thousands of nodes cheap and make results memoisable.
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


def device_mask(shape: Shape, first: int, count: int) -> int:
    """Core mask of `count` devices starting at device `first`."""
    cpd = shape.cores_per_device
    return _run(first * cpd, count * cpd)


def unhealthy_core_mask(shape: Shape, unhealthy_devices: int) -> int:
    """Core mask of the cores that sit on unhealthy devices (given as a device mask)."""
    m = 0
    for d in indices(unhealthy_devices):
        if d < shape.devices:
            m |= device_mask(shape, d, 1)
    return m


def _candidates(shape: Shape, request: Request) -> Iterator[int]:
    if request.resource.whole_devices:
        for first in shape.device_starts(request.count):
            yield device_mask(shape, first, request.count)
        return
    n = request.count
    if n < 1 or n > shape.cores:
        return
    cpd = shape.cores_per_device
    for start in range(shape.cores - n + 1):
        first, last = start // cpd, (start + n - 1) // cpd
        touched = last - first + 1
        if shape.rule is Rule.ALIGNED and n != shape.cores:
            block = shape.block_for_span(touched)
            if first // block != last // block:
                continue
        yield _run(start, n)


@lru_cache(maxsize=4096)
def candidates(shape: Shape, request: Request) -> tuple[int, ...]:
    """Core masks of every topologically valid set for the request, ignoring usage. A request
    fits a node exactly when one of them is free of its blocked cores, which is far cheaper to
    test than choosing the best set: the extender's filter tests thousands of nodes."""
    return tuple(_candidates(shape, request))


def free_runs(flags: Sequence[bool]) -> list[int]:
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
    device_free = [not blocked & device_mask(shape, d, 1) for d in range(shape.devices)]
    if shape.rule is Rule.ALIGNED:
        counts = [
            sum(all(device_free[first : first + size]) for first in range(0, shape.devices, size))
            for size in shape.device_sizes()
        ]
    else:
        runs = free_runs(device_free)
        counts = [sum(r // size for r in runs) for size in shape.device_sizes()]
    core_runs = free_runs([not blocked >> c & 1 for c in range(shape.devices * cpd)])
    return (*counts, max(core_runs, default=0))


def span(shape: Shape, cores: int) -> int:
    """How many devices a core mask touches."""
    cpd_mask = (1 << shape.cores_per_device) - 1
    return sum(1 for d in range(shape.devices) if cores >> (d * shape.cores_per_device) & cpd_mask)


@lru_cache(maxsize=65536)
def ranked(shape: Shape, blocked: int, request: Request, must_include: int) -> tuple[int, ...]:
    """The free valid sets for the request that contain `must_include` (a core mask), best
    first: fewest devices (pack cores), then the most room left, then the lowest index."""
    keyed = [
        (span(shape, cand), tuple(-q for q in quality(shape, blocked | cand)), cand)
        for cand in candidates(shape, request)
        if not cand & blocked and cand & must_include == must_include
    ]
    return tuple(cand for *_, cand in sorted(keyed))


def request_error(shape: Shape, request: Request) -> str | None:
    """Why the request can never be met on this shape, even empty; None when it can."""
    if request.resource.whole_devices:
        return shape.device_request_error(request.count)
    return shape.core_request_error(request.count)


def describe_free(shape: Shape, blocked: int, request: Request) -> str:
    """Why no valid set of the request is free, with what is."""
    if request.resource.whole_devices:
        free = [not blocked & device_mask(shape, d, 1) for d in range(shape.devices)]
        longest = max(free_runs(free), default=0)
        return (
            f"no valid set of {request.count} contiguous free Neuron devices on {shape.name}: "
            f"{sum(free)} of {shape.devices} devices free, longest free run {longest}"
        )
    free = [not blocked >> c & 1 for c in range(shape.cores)]
    longest = max(free_runs(free), default=0)
    return (
        f"no valid set of {request.count} contiguous free NeuronCores on {shape.name}: "
        f"{sum(free)} of {shape.cores} cores free, longest free run {longest}"
    )


def placement_of(shape: Shape, resource: Resource, cores: int) -> Placement:
    core_ids = indices(cores)
    devices = tuple(sorted({shape.device_of(c) for c in core_ids}))
    ids = devices if resource.whole_devices else core_ids
    return Placement(resource, ids, core_ids, devices)


def id_count(shape: Shape, resource: Resource, cores: int) -> int:
    """How many IDs of the resource a core mask holds."""
    if resource.whole_devices:
        return cores.bit_count() // shape.cores_per_device
    return cores.bit_count()


def lowest(shape: Shape, resource: Resource, cores: int, count: int) -> int:
    """Core mask of the `count` lowest IDs (devices or cores) of a core mask."""
    ids = placement_of(shape, resource, cores).ids[:count]
    if resource.whole_devices:
        return mask(c for d in ids for c in shape.cores_of(d))
    return mask(ids)


@lru_cache(maxsize=1 << 16)
def room(shape: Shape, request: Request, blocked: int) -> int:
    """The most pods asking `request` that still fit together beside `blocked` cores. All
    valid sets of one request have the same length and come in order of their start, so
    taking every free one greedily is optimal (interval scheduling)."""
    n = 0
    for cand in candidates(shape, request):
        if not cand & blocked:
            n += 1
            blocked |= cand
    return n
