"""The extender tells kube-scheduler when room appears after it turned a pod away, by a pod
event of its own: a patch of one annotation of its own pod (extender/requeue.py)."""

from __future__ import annotations

from extender_helpers import (
    CORE,
    RunningExtender,
    filter_args,
    make_node,
    make_pod,
    running_pod,
    wait_for,
)
from neuron_k8s.extender.requeue import ANNOTATION, Requeuer
from neuron_k8s.extender.server import ExtenderServer
from neuron_k8s.extender.verbs import Extender
from neuron_k8s.kube import KubeClient


def start(api, cluster) -> RunningExtender:
    cluster.put("pods", make_pod("extender-abc", namespace="neuron", annotations={}))
    client = KubeClient.for_url(api.url)
    extender = Extender(client, requeue=Requeuer(client, "neuron", "extender-abc", interval=0.0))
    server = ExtenderServer(extender, "127.0.0.1", 0)
    server.poll_interval = 0.02
    extender.start()
    server.start()
    assert extender.wait_ready(5)
    return RunningExtender(extender, server)


def nudges(api) -> list:
    return api.calls_of("PATCH", "/namespaces/neuron/pods/extender-abc")


def test_room_after_a_pod_was_turned_away_patches_the_extenders_own_pod(api, cluster):
    cluster.put("nodes", make_node("small", "inf2.xlarge"))  # cores 0,1
    cluster.put("pods", running_pod("holder", "small", [0, 1]))
    ext = start(api, cluster)
    try:
        wait_for(lambda: ext.extender.state.usage().get("small") == 3, what="holder seen")
        body = ext.post("filter", filter_args(make_pod("p", [("m", {CORE: "2"})]), ["small"]))
        assert "small" in body.json()["FailedNodes"]
        assert nudges(api) == []
        cluster.delete("pods", "default/holder")
        wait_for(lambda: nudges(api), what="the extender's own pod patched")
        (patch,) = nudges(api)
        assert list(patch.body["metadata"]["annotations"]) == [ANNOTATION]
        assert patch.content_type == "application/merge-patch+json"
    finally:
        ext.stop()


def test_room_with_nobody_turned_away_patches_nothing(api, cluster):
    cluster.put("nodes", make_node("small", "inf2.xlarge"))
    cluster.put("pods", running_pod("holder", "small", [0, 1]))
    ext = start(api, cluster)
    try:
        wait_for(lambda: ext.extender.state.usage().get("small") == 3, what="holder seen")
        cluster.delete("pods", "default/holder")
        wait_for(lambda: not ext.extender.state.usage().get("small"), what="holder gone")
        body = ext.post("filter", filter_args(make_pod("p", [("m", {CORE: "2"})]), ["small"]))
        assert body.json()["NodeNames"] == ["small"]
        assert nudges(api) == []
    finally:
        ext.stop()
