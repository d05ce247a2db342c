"""The one record reader (pods.read_record): pod owners can write the record annotations, so a
record is used only when it describes sets of the node it names that match the pod's own
requests; anything else is refused with a sentence, cheaply, whatever its size."""

from __future__ import annotations

import json
import re
import time
import tracemalloc
from typing import Any

import pytest
from neuron_k8s.allocator import Resource, placement_of
from neuron_k8s.pods import (
    ALLOCATION,
    AWS_NEURON_IDS,
    MAX_IDS,
    BadRecord,
    ContainerAllocation,
    allocation_annotations,
    parse_id_list,
    read_record,
)
from neuron_k8s.topology import shape_for

INF2 = shape_for("inf2.48xlarge")  # 12 devices of 2 cores
NC = Resource.NEURONCORE.value
DEV = Resource.NEURON.value


def container(name: str, resource: str, count: int) -> dict[str, Any]:
    return {"name": name, "resources": {"limits": {resource: str(count)}}}


def pod(
    annotations: dict[str, str],
    containers: list[dict[str, Any]] | None = None,
    inits: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": containers or [container("c0", NC, 2)]}
    if inits:
        spec["initContainers"] = inits
    return {"metadata": {"annotations": annotations}, "spec": spec}


def record(containers: list[dict[str, Any]], node: str = "n1") -> dict[str, str]:
    return {ALLOCATION: json.dumps({"node": node, "containers": containers})}


def entry(name: str, resource: str, ids: list[int], cores: list[int], devices: list[int]) -> dict:
    return {"name": name, "resource": resource, "ids": ids, "cores": cores, "devices": devices}


def cores_entry(name: str, cores: list[int]) -> dict[str, Any]:
    return entry(name, NC, cores, cores, sorted({c // 2 for c in cores}))


def test_a_record_the_extender_wrote_reads_back() -> None:
    placement = placement_of(INF2, Resource.NEURONCORE, 0b1100)
    notes = allocation_annotations("n1", [ContainerAllocation("c0", placement)], 1)
    found = read_record(pod(notes), INF2, node="n1")
    assert found is not None
    assert found.node == "n1"
    assert found.allocations == (ContainerAllocation("c0", placement),)


def test_a_pod_without_a_record_has_none() -> None:
    assert read_record(pod({}), INF2) is None


@pytest.mark.parametrize(
    ("cores", "why"),
    [
        ([-1, 0], "not in 0.."),
        ([10**9, 10**9 + 1], "not in 0.."),
        ([], "non-empty"),
        ([1, 1], "twice"),
        ([True, 2], "not in 0.."),
    ],
)
def test_indices_out_of_bounds_or_malformed_are_refused(cores: list[Any], why: str) -> None:
    notes = record([entry("c0", NC, cores, cores, [0])])
    with pytest.raises(BadRecord, match=why):
        read_record(pod(notes), INF2)


def test_a_core_beyond_the_node_is_refused_with_the_node_named() -> None:
    notes = record([cores_entry("c0", [24, 25])])
    with pytest.raises(BadRecord, match=re.escape("core 25 is not on inf2.48xlarge")):
        read_record(pod(notes), INF2)


def test_a_record_naming_another_node_is_refused_where_the_node_is_known() -> None:
    notes = record([cores_entry("c0", [0, 1])], node="elsewhere")
    with pytest.raises(BadRecord, match="names node 'elsewhere', not 'n1'"):
        read_record(pod(notes), INF2, node="n1")


def test_ids_that_do_not_match_the_cores_are_refused() -> None:
    notes = record([entry("c0", NC, [4, 5], [0, 1], [0])])
    with pytest.raises(BadRecord, match="do not describe one set"):
        read_record(pod(notes), INF2)


def test_whole_devices_without_all_their_cores_are_refused() -> None:
    notes = record([entry("c0", DEV, [0], [0], [0])])
    with pytest.raises(BadRecord, match="not all of their cores"):
        read_record(pod(notes, [container("c0", DEV, 1)]), INF2)


def test_a_record_whose_counts_differ_from_the_requests_is_refused() -> None:
    notes = record([cores_entry("c0", [0, 1, 2, 3])])
    with pytest.raises(BadRecord, match=re.escape("ask for c0: 2 aws.amazon.com/neuroncore")):
        read_record(pod(notes), INF2)


def test_a_record_for_a_pod_that_asks_for_nothing_is_refused() -> None:
    notes = record([cores_entry("c0", [0, 1])])
    with pytest.raises(BadRecord, match="ask for nothing"):
        read_record(pod(notes, [{"name": "c0"}]), INF2)


def test_two_app_containers_on_one_core_are_refused() -> None:
    notes = record([cores_entry("a", [0, 1]), cores_entry("b", [1, 2])])
    with pytest.raises(BadRecord, match="container b shares a core"):
        read_record(pod(notes, [container("a", NC, 2), container("b", NC, 2)]), INF2)


def test_a_container_reusing_its_init_containers_cores_is_accepted() -> None:
    notes = record([cores_entry("warmup", [0, 1]), cores_entry("app", [0, 1])])
    found = read_record(
        pod(notes, [container("app", NC, 2)], inits=[container("warmup", NC, 2)]), INF2
    )
    assert found is not None and len(found.allocations) == 2


def test_a_huge_record_is_refused_unread() -> None:
    notes = {ALLOCATION: "[" * (1 << 20)}
    with pytest.raises(BadRecord, match="not a record of this stack"):
        read_record(pod(notes), INF2)


def test_aws_ids_alone_are_split_by_the_requests() -> None:
    found = read_record(pod({AWS_NEURON_IDS: "4,5"}), INF2)
    assert found is not None and found.node is None
    assert found.allocations[0].placement.cores == (4, 5)


def test_aws_ids_beyond_the_node_are_refused() -> None:
    with pytest.raises(BadRecord, match=re.escape("not distinct aws.amazon.com/neuroncore IDs")):
        read_record(pod({AWS_NEURON_IDS: "30,31"}), INF2)


def test_a_giant_aws_ids_range_is_refused_without_expanding_it() -> None:
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(BadRecord, match="not within"):
            read_record(pod({AWS_NEURON_IDS: "0-10000000"}), INF2)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, f"reading the range took {peak} bytes"
    assert time.perf_counter() - started < 1


def test_id_lists_are_bounded_in_count_as_well_as_in_value() -> None:
    with pytest.raises(ValueError, match=f"more than {MAX_IDS}"):
        parse_id_list(",".join(["0-9"] * (MAX_IDS // 10 + 1)))
