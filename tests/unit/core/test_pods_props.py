"""Properties of the pod annotation codec and request parsing."""

from __future__ import annotations

import pytest
from core_strategies import shapes
from hypothesis import given, settings
from hypothesis import strategies as st
from neuron_k8s.allocator import NoFit, Request, Resource, choose_all
from neuron_k8s.pods import (
    ALLOCATION,
    AWS_NEURON_IDS,
    NEURON_ALLOCATED,
    BadPod,
    ContainerAllocation,
    allocation_annotations,
    container_requests,
    merge_patch,
    parse_id_list,
    placement_annotations,
    read_allocation,
    visible_cores_env,
)
from neuron_k8s.topology import Shape


def pod(containers: list[dict], annotations: dict[str, str] | None = None) -> dict:
    return {"metadata": {"annotations": annotations or {}}, "spec": {"containers": containers}}


@settings(max_examples=60, deadline=None)
@given(shapes, st.data())
def test_allocation_annotations_read_back_to_the_same_placements(
    shape: Shape, data: st.DataObject
) -> None:
    requests = data.draw(
        st.lists(
            st.builds(Request, st.sampled_from([Resource.NEURON, Resource.NEURONCORE]), st.just(1)),
            min_size=1,
            max_size=3,
        )
    )
    try:
        placements = choose_all(shape, requests)
    except NoFit:
        return
    allocations = [ContainerAllocation(f"c{i}", p) for i, p in enumerate(placements)]
    notes = allocation_annotations("node-1", allocations, 42)
    assert notes[NEURON_ALLOCATED] == "false"
    assert notes[AWS_NEURON_IDS] == ",".join(str(i) for p in placements for i in p.ids)
    assert read_allocation(pod([], notes)) == ("node-1", allocations)


@given(st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=10), max_size=4))
def test_merge_patch_touches_only_the_given_annotation_keys(keys: dict[str, str]) -> None:
    assert merge_patch(keys) == {"metadata": {"annotations": keys}}


@given(st.lists(st.integers(0, 200), max_size=20))
def test_id_lists_round_trip(ids: list[int]) -> None:
    assert parse_id_list(",".join(str(i) for i in ids)) == ids


@given(st.sets(st.integers(0, 127), max_size=20))
def test_visible_cores_are_sorted_plain_indices(cores: set[int]) -> None:
    text = visible_cores_env(list(cores))
    assert "-" not in text
    assert [int(c) for c in text.split(",") if c] == sorted(cores)


def test_limits_alone_make_a_request() -> None:
    p = pod([{"name": "a", "resources": {"limits": {"aws.amazon.com/neuroncore": "2"}}}])
    assert [(r.container, r.request) for r in container_requests(p)] == [
        ("a", Request(Resource.NEURONCORE, 2))
    ]


def test_asking_for_both_resources_in_one_container_is_refused() -> None:
    p = pod(
        [
            {
                "name": "a",
                "resources": {
                    "limits": {"aws.amazon.com/neuroncore": "2", "aws.amazon.com/neuron": "1"}
                },
            }
        ]
    )
    with pytest.raises(BadPod, match="both"):
        container_requests(p)


def test_unreadable_allocation_annotation_is_bad() -> None:
    with pytest.raises(BadPod):
        read_allocation(pod([], {ALLOCATION: "{not json"}))


@settings(max_examples=40, deadline=None)
@given(shapes, st.data())
def test_placement_annotations_are_the_id_keys_of_the_bind_annotations(
    shape: Shape, data: st.DataObject
) -> None:
    count = data.draw(st.integers(1, shape.cores), label="count")
    try:
        (placement,) = choose_all(shape, [Request(Resource.NEURONCORE, count)], 0)
    except NoFit:
        return
    allocations = [ContainerAllocation("main", placement)]
    keys = placement_annotations("n1", allocations)
    full = allocation_annotations("n1", allocations, 123)
    assert keys == {AWS_NEURON_IDS: full[AWS_NEURON_IDS], ALLOCATION: full[ALLOCATION]}
    assert read_allocation({"metadata": {"annotations": keys}}) == ("n1", allocations)
