"""`why`: the scheduler's reasons, the verdict per Neuron node, what would fit, refusals."""

from fleetdata import claim_pod, container, dp_node, dra_node, pod, recorded_pod, slices
from neuron_k8s.fleet.model import node_views
from neuron_k8s.fleet.why import explain, scheduler_reasons

NEURON = "aws.amazon.com/neuron"
TRN1 = {"node.kubernetes.io/instance-type": "trn1.32xlarge"}
RULE_REASON = (
    "Instance type trn1.32xlarge does not support requests for device: 7. Please request a "
    "different number of devices (valid: 1, 4, 8, 16)."
)


def pending(name, count, **spec):
    p = pod(name, [container("c", NEURON, count)], phase="Pending", **spec)
    p["status"]["conditions"] = [
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": f"0/3 nodes are available: 1 node(s) had untolerated taint(s), "
            f"2 {RULE_REASON}. preemption: 0/3 nodes are available: 3 Preemption is not helpful.",
        }
    ]
    return p


def fleet(pods=()):
    nodes = [dp_node("t1", "trn1.32xlarge"), dp_node("t2", "trn1.32xlarge")]
    nodes.append(dp_node("i1", "inf2.xlarge"))
    return node_views(nodes, pods, [], [])


def test_scheduler_groups_are_split_at_counts_not_at_commas_inside_a_reason() -> None:
    assert scheduler_reasons(pending("p", 7)["status"]["conditions"][0]["message"]) == [
        "1 node(s) had untolerated taint(s)",
        f"2 {RULE_REASON}",
    ]


def test_seven_devices_on_trn1_are_advised_the_allowed_sizes_around_seven() -> None:
    why = explain(pending("p", 7, nodeSelector=TRN1), fleet(), [])
    assert why.fits == ["trn1.32xlarge allows 1, 4, 8 or 16 devices; ask for 4 or 8"]


def test_the_verdict_per_node_is_the_extenders_sentence_for_the_nodes_the_pod_may_use() -> None:
    why = explain(pending("p", 7, nodeSelector=TRN1), fleet(), [])
    assert why.nodes == [("t1", RULE_REASON), ("t2", RULE_REASON)]


def test_lack_of_room_names_the_most_one_node_could_give() -> None:
    busy = [
        recorded_pod("a", "t1", "trn1.32xlarge", [("c", NEURON, list(range(0, 16)))]),
        recorded_pod("b", "t2", "trn1.32xlarge", [("c", NEURON, list(range(16, 24)))]),
    ]
    why = explain(pending("p", 16, nodeSelector=TRN1), fleet(busy), [])
    assert why.nodes == [
        ("t1", "no free contiguous set of 16 Neuron devices on trn1.32xlarge"),
        ("t2", "no free contiguous set of 16 Neuron devices on trn1.32xlarge"),
    ]
    assert why.fits == [
        "no node it may run on has 16 devices free together now; the most one could give is "
        "8 devices (t2): ask for 8 or wait"
    ]


def test_a_request_that_fits_somewhere_gets_no_advice() -> None:
    why = explain(pending("p", 4, nodeSelector=TRN1), fleet(), [])
    assert why.fits == [] and why.nodes == [("t1", "fits now"), ("t2", "fits now")]


def test_without_a_condition_the_latest_failedscheduling_event_is_read() -> None:
    p = pod("p", [container("c", NEURON, 1)], phase="Pending")
    events = [
        {"reason": "FailedScheduling", "lastTimestamp": "2026-01-01T00:00:02Z", "message": "new"},
        {"reason": "FailedScheduling", "lastTimestamp": "2026-01-01T00:00:01Z", "message": "old"},
    ]
    assert explain(p, fleet(), events).scheduler == ["new"]


def test_a_pod_a_kubelet_refused_gets_the_refusal_and_its_cause() -> None:
    p = pod("p", [container("c", NEURON, 1)], node="t1", phase="Failed")
    p["status"]["reason"] = "UnexpectedAdmissionError"
    p["status"]["message"] = (
        "Pod was rejected: Allocate failed due to rpc error: code = Unknown desc = device 3 "
        "is unhealthy, which is unexpected"
    )
    why = explain(p, fleet(), [])
    assert why.summary == "refused by the kubelet on t1: UnexpectedAdmissionError"
    assert why.fits == ["cause: device 3 is unhealthy"]


def test_a_running_pod_is_not_waiting() -> None:
    p = pod("p", [container("c", NEURON, 1)], node="t1")
    assert explain(p, fleet(), []).summary == "Running on t1, not waiting"


def test_a_pod_with_claims_only_is_judged_on_the_dra_nodes_by_their_room() -> None:
    nodes = [dp_node("t1", "trn1.32xlarge"), dra_node("d", "inf2.48xlarge")]
    views = node_views(nodes, [], [], slices("d", "inf2.48xlarge"))
    p = claim_pod("p", "", "c1")
    p["status"]["phase"] = "Pending"
    assert explain(p, views, []).nodes == [
        ("d", "DRA node: 12 devices or 24 cores free together, 24 cores free in all")
    ]
