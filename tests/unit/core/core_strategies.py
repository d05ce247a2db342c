"""Hypothesis strategies shared by the property tests of the pure core, and an independent,
brute-force statement of the topology rules to check the allocator against."""

from __future__ import annotations

from collections.abc import Iterator

from hypothesis import strategies as st
from neuron_k8s.allocator import Request, Resource
from neuron_k8s.topology import INSTANCE_TYPES, Rule, Shape, shape_for

ALIGNED_BLOCKS = (1, 4, 8, 16)

known_shapes = st.builds(
    shape_for, st.sampled_from(sorted(INSTANCE_TYPES)), st.sampled_from([1, 2])
)
fake_shapes = st.builds(Shape, st.integers(1, 12), st.integers(1, 4), st.just(Rule.RING))
shapes = st.one_of(known_shapes, fake_shapes)
resources = st.sampled_from([Resource.NEURON, Resource.NEURONCORE])


@st.composite
def shape_and_request(draw: st.DrawFn) -> tuple[Shape, Request]:
    shape = draw(shapes)
    resource = draw(resources)
    limit = shape.devices if resource.whole_devices else shape.cores
    return shape, Request(resource, draw(st.integers(1, limit)))


@st.composite
def used_masks(draw: st.DrawFn, shape: Shape) -> int:
    """A usage mask; biased towards sparse usage so that most requests still fit."""
    bits = draw(st.lists(st.integers(0, shape.cores - 1), max_size=shape.cores // 2))
    m = 0
    for b in bits:
        m |= 1 << b
    return m


def run(start: int, length: int) -> int:
    return ((1 << length) - 1) << start


def valid_sets(shape: Shape, request: Request) -> Iterator[int]:
    """Core masks of every set the facts allow, written out independently of the allocator:
    rings take any contiguous run without wrap-around; the trn 4x4 torus takes 1, 4, 8 or 16
    devices on a block aligned to its size, and core sets must fit inside the smallest aligned
    block covering the devices they touch; one or all is always valid."""
    cpd, n = shape.cores_per_device, request.count
    if request.resource.whole_devices:
        for start in range(shape.devices - n + 1):
            aligned = shape.rule is Rule.ALIGNED and n not in (1, shape.devices)
            if aligned and (n not in ALIGNED_BLOCKS or start % n):
                continue
            yield run(start * cpd, n * cpd)
        return
    for start in range(shape.cores - n + 1):
        first, last = start // cpd, (start + n - 1) // cpd
        if shape.rule is Rule.ALIGNED and n != shape.cores:
            span = last - first + 1
            block = next(b for b in ALIGNED_BLOCKS if b >= span)
            if first // block != last // block:
                continue
        yield run(start, n)


def span(shape: Shape, cores: int) -> int:
    return len({c // shape.cores_per_device for c in range(shape.cores) if cores >> c & 1})
