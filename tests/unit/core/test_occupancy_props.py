"""Properties of a node's occupancy (neuron_k8s.occupancy): the counts partition the node, and
the largest free run agrees with an independent, brute-force reading of the topology rules."""

from __future__ import annotations

from core_strategies import shapes
from hypothesis import given
from hypothesis import strategies as st
from neuron_k8s.occupancy import longest_run, occupancy
from neuron_k8s.topology import Rule, Shape, shape_for


@st.composite
def node_states(draw: st.DrawFn) -> tuple[Shape, int, frozenset[int]]:
    shape = draw(shapes)
    held = draw(st.integers(0, (1 << shape.cores) - 1))
    sick = draw(st.frozensets(st.integers(0, shape.devices - 1), max_size=shape.devices))
    return shape, held, sick


def free_devices(shape: Shape, held: int, sick: frozenset[int]) -> list[bool]:
    return [
        d not in sick and not any(held >> c & 1 for c in shape.cores_of(d))
        for d in range(shape.devices)
    ]


def brute_longest(flags: list[bool]) -> int:
    return max(
        (j - i for i in range(len(flags)) for j in range(i, len(flags) + 1) if all(flags[i:j])),
        default=0,
    )


@given(node_states())
def test_the_states_partition_the_cores_and_the_devices(
    state: tuple[Shape, int, frozenset[int]],
) -> None:
    shape, held, sick = state
    occ = occupancy(shape, held, sick)
    assert sum(occ.cores.values()) == shape.cores
    assert sum(occ.devices.values()) == shape.devices
    assert occ.cores["held"] == held.bit_count()


@given(node_states())
def test_a_held_core_on_an_unhealthy_device_counts_as_held(
    state: tuple[Shape, int, frozenset[int]],
) -> None:
    shape, held, sick = state
    occ = occupancy(shape, held, sick)
    sick_cores = {c for d in sick for c in shape.cores_of(d)}
    assert occ.cores["unhealthy"] == len(sick_cores - {c for c in sick_cores if held >> c & 1})
    assert occ.devices["free"] == sum(free_devices(shape, held, sick))


@given(node_states())
def test_the_largest_free_core_run_is_the_longest_run_of_free_cores(
    state: tuple[Shape, int, frozenset[int]],
) -> None:
    shape, held, sick = state
    free = [not held >> c & 1 and shape.device_of(c) not in sick for c in range(shape.cores)]
    assert occupancy(shape, held, sick).largest_free_cores == brute_longest(free)


@given(node_states())
def test_on_a_ring_the_largest_free_device_set_is_the_longest_free_run(
    state: tuple[Shape, int, frozenset[int]],
) -> None:
    shape, held, sick = state
    if shape.rule is Rule.RING:
        expected = brute_longest(free_devices(shape, held, sick))
        assert occupancy(shape, held, sick).largest_free_devices == expected


@given(node_states())
def test_on_the_torus_the_largest_free_set_is_a_free_aligned_block_and_no_larger_one_is(
    state: tuple[Shape, int, frozenset[int]],
) -> None:
    shape, held, sick = state
    if shape.rule is not Rule.ALIGNED:
        return
    free = free_devices(shape, held, sick)
    size = occupancy(shape, held, sick).largest_free_devices

    def block_free(n: int) -> bool:
        return any(all(free[s : s + n]) for s in range(0, shape.devices, n))

    assert size == 0 or block_free(size)
    assert not any(block_free(n) for n in (1, 4, 8, 16) if size < n <= shape.devices)


@given(node_states())
def test_every_accepted_size_up_to_the_largest_free_set_has_a_free_placement(
    state: tuple[Shape, int, frozenset[int]],
) -> None:
    shape, held, sick = state
    occ = occupancy(shape, held, sick)
    assert set(occ.placements) == set(shape.device_sizes())
    for size, count in occ.placements.items():
        assert (count > 0) == (size <= occ.largest_free_devices)


def test_one_held_core_on_trn1_32xlarge_leaves_one_block_of_eight() -> None:
    occ = occupancy(shape_for("trn1.32xlarge"), held_cores=1 << 2, unhealthy_devices=())
    assert occ.largest_free_devices == 8
    assert occ.placements == {16: 0, 8: 1, 4: 3, 1: 15}
    assert occ.largest_free_cores == 32 - 3


def test_an_empty_node_is_one_free_run() -> None:
    shape = shape_for("inf2.48xlarge")
    occ = occupancy(shape, 0, ())
    assert (occ.largest_free_cores, occ.largest_free_devices) == (shape.cores, shape.devices)


def test_longest_run_reads_only_the_given_width() -> None:
    assert longest_run(0b1111_0110, 4) == 2
