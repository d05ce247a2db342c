"""POST /prioritize: HostPriorityList, scores 0-10: the cheapest node in room taken from the
pods to come gets 10, the others at most 7."""

from __future__ import annotations

from extender_helpers import CORE, NEURON, filter_args, make_node, make_pod, running_pod
from neuron_k8s.allocator import Request, Resource
from neuron_k8s.extender.scoring import Demand


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


def test_prioritize_scores_the_only_candidate_ten(cluster, start_extender):
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


def test_prioritize_keeps_the_only_nodes_that_serve_a_size_free(cluster, start_extender):
    # 2 whole devices is not a valid request on trn1.32xlarge: once filter has seen such pods,
    # a 1-core pod belongs on the trn1, not on the inf2 that alone serves them.
    cluster.put("nodes", make_node("trn1", "trn1.32xlarge"))
    cluster.put("nodes", make_node("inf2", "inf2.24xlarge"))
    ext = start_extender()
    for i in range(3):
        ext.post("filter", filter_args(make_pod(f"pair-{i}", [("m", {NEURON: "2"})]), ["inf2"]))
    scores = _scores(ext, make_pod("p", [("m", {CORE: "1"})]), ["trn1", "inf2"])
    assert scores == {"trn1": 10, "inf2": 0}


def test_prioritize_gives_a_retried_pod_the_node_it_holds_cores_on(cluster, start_extender):
    cluster.put("nodes", make_node("held", "inf2.24xlarge"))
    cluster.put("nodes", make_node("other", "inf2.24xlarge"))
    pod = running_pod("retry", "held", [0, 1], phase="Pending")
    del pod["spec"]["nodeName"]
    cluster.put("pods", pod)
    ext = start_extender()
    assert _scores(ext, cluster.get("pods", "default/retry"), ["held", "other"])["held"] == 10


def test_prioritize_counts_room_on_every_neuron_node_not_only_the_candidates(
    cluster, start_extender
):
    # An 8-device pod fits only the trn1 and the inf2.48xlarge. Pairs of devices also fit the
    # four inf2.24xlarge, so taking pair room on the inf2.48xlarge costs little, whereas the
    # trn1 is the only node a 16-device pod can have.
    cluster.put("nodes", make_node("trn1", "trn1.32xlarge"))
    cluster.put("nodes", make_node("inf2-48", "inf2.48xlarge"))
    small = [f"inf2-24-{i}" for i in range(4)]
    for name in small:
        cluster.put("nodes", make_node(name, "inf2.24xlarge"))
    ext = start_extender()
    for i in range(2):
        ext.post("filter", filter_args(make_pod(f"pair-{i}", [("m", {NEURON: "2"})]), small))
    ext.post("filter", filter_args(make_pod("whole", [("m", {NEURON: "16"})]), ["trn1"]))
    scores = _scores(ext, make_pod("p", [("m", {NEURON: "8"})]), ["trn1", "inf2-48"])
    assert scores == {"inf2-48": 10, "trn1": 0}


def test_demand_keeps_a_rarely_asked_whole_node_size_among_many_kinds():
    demand = Demand()
    common = [Request(Resource.NEURONCORE, n) for n in (1, 2, 4, 8)]
    common += [Request(Resource.NEURON, n) for n in (1, 2, 4, 8, 12)]
    for _ in range(20):
        demand.record(common)
    demand.record([Request(Resource.NEURON, 16)])
    assert Request(Resource.NEURON, 16) in demand.weights([Request(Resource.NEURONCORE, 1)])
