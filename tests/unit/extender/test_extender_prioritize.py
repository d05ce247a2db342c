"""POST /prioritize: HostPriorityList, scores 0-10, best fit."""

from __future__ import annotations

from conftest import CORE, NEURON, filter_args, make_node, make_pod, running_pod


def _scores(ext, pod, names):
    resp = ext.post("prioritize", filter_args(pod, names))
    assert resp.status == 200
    return {entry["Host"]: entry["Score"] for entry in resp.json()}


def test_prioritize_answers_host_priority_list_for_every_candidate(cluster, start_extender):
    cluster.put("nodes", make_node("a"))
    cluster.put("nodes", make_node("b"))
    ext = start_extender()
    body = ext.post("prioritize", filter_args(make_pod("p"), ["a", "b", "ghost"])).json()
    assert [e["Host"] for e in body] == ["a", "b", "ghost"]
    assert all(set(e) == {"Host", "Score"} and 0 <= e["Score"] <= 10 for e in body)


def test_prioritize_prefers_the_busier_node_that_still_fits(cluster, start_extender):
    cluster.put("nodes", make_node("empty", "inf2.24xlarge"))
    cluster.put("nodes", make_node("busy", "inf2.24xlarge"))
    cluster.put("pods", running_pod("holder", "busy", list(range(8))))
    ext = start_extender()
    scores = _scores(ext, make_pod("p", [("m", {CORE: "2"})]), ["empty", "busy"])
    assert scores["busy"] > scores["empty"]


def test_prioritize_scores_node_that_fills_up_exactly_ten(cluster, start_extender):
    cluster.put("nodes", make_node("busy", "inf2.24xlarge"))
    cluster.put("pods", running_pod("holder", "busy", list(range(8))))
    ext = start_extender()
    assert _scores(ext, make_pod("p", [("m", {CORE: "4"})]), ["busy"]) == {"busy": 10}


def test_prioritize_scores_zero_where_the_pod_does_not_fit(cluster, start_extender):
    cluster.put("nodes", make_node("trn1", "trn1.32xlarge"))
    cluster.put("nodes", make_node("cpu", "m5.large"))
    ext = start_extender()
    scores = _scores(ext, make_pod("p", [("m", {NEURON: "7"})]), ["trn1", "cpu", "ghost"])
    assert scores == {"trn1": 0, "cpu": 0, "ghost": 0}


def test_prioritize_prefers_a_small_node_over_breaking_a_large_one(cluster, start_extender):
    cluster.put("nodes", make_node("small", "inf2.xlarge"))
    cluster.put("nodes", make_node("large", "inf2.48xlarge"))
    ext = start_extender()
    scores = _scores(ext, make_pod("p", [("m", {NEURON: "1"})]), ["small", "large"])
    assert scores["small"] > scores["large"]
