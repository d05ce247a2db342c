"""neuron_extender_pending_pods: the Neuron pods waiting for a node, as the extender's pod watch
shows them (docs/metrics.md), for the dashboard's pending panel."""

from __future__ import annotations

from extender_helpers import CORE, make_node, make_pod
from neuron_k8s.extender.pending import PendingPods, pending
from waiting import wait_until


def gauge(ext) -> float:
    for line in ext.get("/metrics").body.decode().splitlines():
        if line.startswith("neuron_extender_pending_pods "):
            return float(line.split()[1])
    raise AssertionError("neuron_extender_pending_pods not served")


def test_an_unbound_pod_asking_for_neuron_cores_is_pending():
    assert pending(make_pod("p", [("main", {CORE: "2"})]))


def test_a_bound_pod_is_not_pending():
    pod = make_pod("p")
    pod["spec"]["nodeName"] = "inf2-a"
    assert not pending(pod)


def test_a_pod_without_neuron_requests_is_not_pending():
    assert not pending(make_pod("p", [("main", {})]))


def test_a_finished_unbound_pod_is_not_pending():
    pod = make_pod("p")
    pod["status"] = {"phase": "Failed"}
    assert not pending(pod)


def test_the_callbacks_of_the_state_still_see_every_event():
    seen: list[str] = []
    pods = PendingPods(lambda event, obj: seen.append(event), lambda items: seen.append("list"))
    pods.replace([make_pod("a", uid="a")])
    pods.apply("ADDED", make_pod("b", uid="b"))
    pods.apply("DELETED", make_pod("a", uid="a"))
    assert seen == ["list", "ADDED", "DELETED"]
    assert pods.count() == 1


def test_the_gauge_follows_pods_as_they_arrive_bind_and_go(cluster, start_extender):
    cluster.put("nodes", make_node("inf2-a"))
    cluster.put("pods", make_pod("waiting", uid="u1"))
    ext = start_extender()
    assert gauge(ext) == 1
    cluster.put("pods", make_pod("second", uid="u2"))
    wait_until(lambda: gauge(ext) == 2, 5, "the second pending pod")
    bound = make_pod("waiting", uid="u1")
    bound["spec"]["nodeName"] = "inf2-a"
    cluster.put("pods", bound)
    wait_until(lambda: gauge(ext) == 1, 5, "the bound pod no longer pending")
    cluster.delete("pods", "default/second")
    wait_until(lambda: gauge(ext) == 0, 5, "the deleted pod no longer pending")
