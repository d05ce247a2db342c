"""Random and hostile pod records for the extender's pod view, shared by
test_extender_records_fuzz.py and plugin-src/fuzz/fuzz_extender.py --records: negative, huge
and empty indices, wrong node, unbound, counts that do not match, giant AWS_NEURON_IDS ranges,
non-JSON and values of the wrong type. `check` feeds well-formed pods with hostile ones to
ClusterState (a list, then watch events, then a node arriving late) and asserts that nothing
raises and every well-formed pod counts exactly as it does without the hostile ones."""

from __future__ import annotations

import copy
import json
from typing import Any

from extender_helpers import CORE, NEURON, make_node, running_pod
from hypothesis import strategies as st
from neuron_k8s.extender.state import ClusterState
from neuron_k8s.pods import read_record
from neuron_k8s.topology import shape_for

ALLOCATION = "neuron.k8s.local/allocation"
NODES = {"a": "inf2.24xlarge", "b": "trn1.32xlarge"}
LATE = ("c", "inf2.xlarge")  # named by records before the node watch shows it
NODE_NAMES = [*NODES, LATE[0], "elsewhere", ""]

ints = st.one_of(
    st.integers(-3, 40),
    st.sampled_from([-1, -(2**63), 10**9, 4 * 10**9, 2**64, 10**18]),
)
wrong = st.sampled_from([None, True, 1.5, "", "0", "0-3", {}, {"a": 1}, [[0]], ["x"]])
index_lists = st.one_of(st.lists(ints, max_size=6), wrong)


@st.composite
def containers(draw: st.DrawFn) -> Any:
    if draw(st.booleans()):
        return draw(wrong)
    return [
        {
            k: v
            for k, v in {
                "name": draw(st.sampled_from(["main", "warmup", "x", 7])),
                "resource": draw(st.sampled_from([CORE, NEURON, "aws.amazon.com/x", None, 1])),
                "ids": draw(index_lists),
                "cores": draw(index_lists),
                "devices": draw(index_lists),
            }.items()
            if draw(st.integers(0, 9)) > 0  # now and then a key is missing
        }
        for _ in range(draw(st.integers(0, 3)))
    ]


@st.composite
def hostile_pods(draw: st.DrawFn, i: int) -> dict[str, Any]:
    node = draw(st.sampled_from(NODE_NAMES))
    pod = running_pod(f"hostile-{i}", node or "a", [0, 1])
    notes = pod["metadata"]["annotations"]
    kind = draw(st.sampled_from(["record", "text", "aws-ids", "types"]))
    if kind == "record":
        record = {
            "node": draw(st.sampled_from([*NODE_NAMES, None, 3])),
            "containers": draw(containers()),
        }
        notes[ALLOCATION] = json.dumps(record)
    elif kind == "text":
        notes[ALLOCATION] = draw(st.sampled_from(["{not json", "[]", "null", "1", '"x"', "{}"]))
    elif kind == "aws-ids":
        notes.pop(ALLOCATION)
        notes["AWS_NEURON_IDS"] = draw(st.sampled_from(["0-10000000", "-1", "0,0", "x", "5-2"]))
    else:
        where = draw(st.sampled_from(["annotations", "spec", "status", "containers", "resources"]))
        bad = draw(wrong)
        if where == "annotations":
            pod["metadata"]["annotations"] = {ALLOCATION: bad}
        elif where == "containers":
            pod["spec"]["containers"] = bad
        elif where == "resources":
            pod["spec"]["containers"][0]["resources"] = {"requests": {CORE: bad}}
        else:
            pod[where] = bad
    count = draw(st.sampled_from([None, "0", "1", "2", "64", "-1", "x"]))
    spec_containers = pod["spec"].get("containers") if isinstance(pod.get("spec"), dict) else None
    if count is not None and isinstance(spec_containers, list):
        for c in spec_containers:
            if isinstance(c, dict):
                c["resources"] = {"requests": {CORE: count}, "limits": {CORE: count}}
    if isinstance(pod.get("spec"), dict):
        pod["spec"]["nodeName"] = draw(st.sampled_from([None, *NODE_NAMES]))
    if isinstance(pod.get("status"), dict):
        pod["status"]["phase"] = draw(st.sampled_from(["Running", "Pending", "Succeeded"]))
    return pod


GOOD = [
    running_pod("good-a", "a", [0, 1]),
    running_pod("good-a2", "a", [4, 5, 6, 7], resource=NEURON),
    running_pod("good-b", "b", [2, 3]),
    running_pod("good-c", "c", [0]),
]


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[tuple[str, dict[str, Any]]]]:
    hostile = [draw(hostile_pods(i)) for i in range(draw(st.integers(1, 4)))]
    events = [
        (draw(st.sampled_from(["ADDED", "MODIFIED", "DELETED"])), draw(st.sampled_from(hostile)))
        for _ in range(draw(st.integers(0, 4)))
    ]
    return draw(st.permutations(GOOD + hostile)), events


def _state(pods: list[dict[str, Any]]) -> ClusterState:
    state = ClusterState()
    state.replace_nodes([make_node(n, t) for n, t in NODES.items()])
    state.replace_pods(copy.deepcopy(pods))
    return state


def _same_for_good(mixed: ClusterState, clean: ClusterState) -> None:
    """Every well-formed pod counts as without the hostile ones; each node's usage is theirs
    plus only hostile records that are valid for the node they are bound to."""
    uses, good = mixed.pod_uses(), clean.pod_uses()
    assert {u: uses.get(u) for u in good} == good
    expected = clean.usage()
    for uid, use in uses.items():
        if uid in good:
            continue
        shape = mixed._shape_of(use.node)
        assert shape is None or use.cores.bit_length() <= shape.cores
        expected[use.node] = expected.get(use.node, 0) | use.cores
    assert {n: m for n, m in mixed.usage().items() if m} == {n: m for n, m in expected.items() if m}
    for name, view in mixed.nodes.items():
        assert view.shape is None or view.used.bit_length() <= view.shape.cores, name


def check(case: tuple[list[dict[str, Any]], list[tuple[str, dict[str, Any]]]]) -> None:
    pods, events = case
    mixed, clean = _state(pods), _state(GOOD)
    _same_for_good(mixed, clean)
    for event, pod in events:
        mixed.apply_pod(event, copy.deepcopy(pod))
    _same_for_good(mixed, clean)
    for state in (mixed, clean):
        state.apply_node("ADDED", make_node(*LATE))
    _same_for_good(mixed, clean)
    shape = shape_for(LATE[1])
    for use in mixed.pod_uses().values():  # what counts on the late node is valid for it
        if use.node == LATE[0]:
            pod = next(p for p in pods if p["metadata"]["uid"] == use.uid)
            assert read_record(pod, shape, LATE[0]) is not None
