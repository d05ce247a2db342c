"""Pods' records in the extender's view: a record counts only for a pod bound to the node it
names and only when it is valid for that node's shape; an unusable one is ignored, reported
once per change, and never changes another pod's count."""

from __future__ import annotations

import json

import pytest
from extender_helpers import CORE, make_node, running_pod, wait_for
from extender_records import ALLOCATION, job_with_init, unbound, with_cores
from neuron_k8s.extender.state import ClusterState

HOSTILE = {
    "negative core": [-1],
    "core past any node": [10**9],
    "no cores": [],
    "core past this node": [12, 13],
    "not a list": "0-1",
}


def _state(*nodes: str, instance_type: str = "inf2.24xlarge") -> ClusterState:
    state = ClusterState()
    state.replace_nodes([make_node(n, instance_type) for n in nodes])  # 24xlarge: 12 cores
    return state


@pytest.mark.parametrize("cores", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_record_in_a_list_is_ignored_and_the_pods_after_it_still_count(cores):
    state = _state("n")
    state.replace_pods([with_cores("bad", "n", cores), running_pod("good", "n", [2, 3])])
    assert state.usage() == {"n": 0b1100}
    assert set(state.pod_uses()) == {"uid-default-good"}


@pytest.mark.parametrize("cores", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_record_in_a_watch_event_is_ignored(cores):
    state = _state("n")
    state.replace_pods([running_pod("good", "n", [0])])
    state.apply_pod("ADDED", with_cores("bad", "n", cores))
    assert state.nodes["n"].used == 0b1


def test_a_core_index_of_a_billion_never_builds_a_huge_mask():
    state = _state("n")
    state.replace_pods([with_cores("bad", "n", [10**9], count=1)])
    assert all(used.bit_length() <= 12 for used in state.usage().values())
    assert state.nodes["n"].used == 0


def test_a_record_whose_count_differs_from_the_request_counts_nothing():
    pod = running_pod("greedy", "n", [0, 1, 2, 3])  # asks for 4 in its record
    pod["spec"]["containers"][0]["resources"] = {"requests": {CORE: "1"}, "limits": {CORE: "1"}}
    state = _state("n")
    state.replace_pods([pod])
    assert state.usage() == {}


def test_an_unbound_pod_with_a_record_for_every_core_leaves_the_node_free():
    state = _state("n")
    state.replace_pods([unbound(running_pod("squatter", "n", [0, 1, 2, 3]))])
    assert state.nodes["n"].used == 0


def test_a_record_naming_another_node_than_the_pods_counts_on_neither():
    pod = running_pod("moved", "a", [0, 1])
    pod["spec"]["nodeName"] = "b"
    state = _state("a", "b")
    state.replace_pods([pod])
    assert state.usage() == {}


def test_a_record_for_a_node_not_yet_seen_is_checked_when_the_node_arrives():
    state = ClusterState()
    state.replace_pods([with_cores("bad", "late", [12, 13]), running_pod("good", "late", [0, 1])])
    # Form and bounds only meanwhile: both count, within a small mask.
    assert state.usage()["late"] == 0b11 << 12 | 0b11
    state.apply_node("ADDED", make_node("late", "inf2.24xlarge"))  # 12 cores: not 12, 13
    assert state.nodes["late"].used == 0b11
    assert set(state.pod_uses()) == {"uid-default-good"}


def test_a_record_counts_again_when_its_node_grows_to_fit_it():
    state = _state("n", instance_type="inf2.xlarge")  # 2 cores
    big = running_pod("big", "n", [4, 5])
    state.replace_pods([big])
    assert state.nodes["n"].used == 0
    state.apply_node("MODIFIED", make_node("n", "inf2.24xlarge"))  # 12 cores
    assert state.nodes["n"].used == 0b110000


def test_an_unusable_record_is_reported_once_per_change():
    state = _state("n")
    seen: list = []
    state.records.on_rejected = seen.append
    bad = with_cores("bad", "n", [-1])
    state.apply_pod("ADDED", bad)
    state.apply_pod("MODIFIED", bad)
    state.replace_pods([bad])
    assert [(r.name, r.reason) for r in seen] == [("bad", "unreadable")]
    state.apply_pod("MODIFIED", unbound(with_cores("bad", "n", [0, 1])))
    assert [r.reason for r in seen] == ["unreadable", "unbound"]
    assert state.rejections() == {"unreadable": 1, "unbound": 1}


def test_a_pod_whose_record_is_reported_again_after_it_was_deleted_and_recreated():
    state = _state("n")
    seen: list = []
    state.records.on_rejected = seen.append
    bad = with_cores("bad", "n", [-1])
    state.apply_pod("ADDED", bad)
    state.apply_pod("DELETED", bad)
    state.apply_pod("ADDED", bad)
    assert len(seen) == 2


def test_succeeded_job_pod_with_a_neuron_init_container_holds_nothing():
    state = _state("n")
    state.replace_pods([job_with_init("job", "n", "Running")])
    assert state.nodes["n"].used == 0b11
    state.apply_pod("MODIFIED", job_with_init("job", "n", "Succeeded"))
    assert state.nodes["n"].used == 0
    fresh = _state("n")
    fresh.replace_pods([job_with_init("job", "n", "Succeeded"), job_with_init("j2", "n", "Failed")])
    assert fresh.usage() == {}


def test_the_watched_pod_keeps_what_the_record_check_reads():
    from neuron_k8s.extender.caches import watched_pod

    pod = job_with_init("job", "n", "Running")
    kept = watched_pod(pod)
    assert json.loads(kept["metadata"]["annotations"][ALLOCATION])["node"] == "n"
    assert set(kept["metadata"]["annotations"]) == {ALLOCATION}
    assert "managedFields" not in kept["metadata"] and "volumes" not in kept["spec"]
    state, trimmed_state = _state("n"), _state("n")
    state.replace_pods([pod])
    trimmed_state.replace_pods([kept])
    assert state.pod_uses() == trimmed_state.pod_uses() != {}


def test_an_unusable_record_is_posted_as_a_warning_event_on_the_pod(cluster, start_extender):
    cluster.put("nodes", make_node("n", "inf2.24xlarge"))
    cluster.put("pods", with_cores("bad", "n", [-1]))
    ext = start_extender()
    events = wait_for(lambda: list(cluster.events), what="an event")
    (event,) = events
    assert event["type"] == "Warning" and event["reason"] == "NeuronRecordRejected"
    assert event["involvedObject"]["name"] == "bad"
    assert event["involvedObject"]["uid"] == cluster.get("pods", "default/bad")["metadata"]["uid"]
    metrics = ext.server.metrics.registry
    value = metrics.get_sample_value(
        "neuron_extender_unusable_records_total", {"reason": "unreadable"}
    )
    assert value == 1
