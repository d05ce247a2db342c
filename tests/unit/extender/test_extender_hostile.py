"""The extender as a whole with pods a pod owner wrote: it becomes ready and keeps serving
whatever the records say, lists in pages within their own timeout, and its flags say so."""

from __future__ import annotations

from extender_helpers import CORE, filter_args, make_node, make_pod, running_pod, wait_for
from extender_records import unbound, with_cores
from neuron_k8s.extender import cli


def test_a_fresh_extender_with_hostile_records_becomes_ready_and_serves(cluster, start_extender):
    cluster.put("nodes", make_node("n", "inf2.xlarge"))  # 2 cores
    cluster.put("pods", with_cores("negative", "n", [-1]))
    cluster.put("pods", with_cores("huge", "n", [10**9]))
    cluster.put("pods", with_cores("empty", "n", []))
    cluster.put("pods", unbound(running_pod("squatter", "n", [0, 1])))
    ext = start_extender()  # waits until ready
    assert ext.get("/readyz").status == 200
    body = ext.post("filter", filter_args(make_pod("p", [("m", {CORE: "2"})]), ["n"])).json()
    assert body["NodeNames"] == ["n"]


def test_a_hostile_record_arriving_by_watch_leaves_the_node_free(cluster, start_extender):
    cluster.put("nodes", make_node("n", "inf2.xlarge"))
    ext = start_extender()
    cluster.put("pods", with_cores("negative", "n", [-1]))
    cluster.put("pods", running_pod("marker", "n", [0], resource=CORE))
    wait_for(lambda: ext.extender.state.nodes["n"].used == 0b1, what="the pod after the bad one")
    body = ext.post("filter", filter_args(make_pod("p", [("m", {CORE: "1"})]), ["n"])).json()
    assert body["NodeNames"] == ["n"]


def test_pods_are_listed_in_pages_and_every_page_counts(api, cluster, start_extender):
    cluster.put("nodes", make_node("big", "inf2.48xlarge"))
    for i in range(1001):
        cluster.put("pods", make_pod(f"idle-{i}"))
    cluster.put("pods", running_pod("last", "big", [4, 5]))
    ext = start_extender()
    lists = [c.query for c in api.calls_of("GET", "/api/v1/pods") if "watch" not in c.query]
    assert [q.get("limit") for q in lists] == ["500"] * 3
    assert [bool(q.get("continue")) for q in lists] == [False, True, True]
    assert ext.extender.state.usage() == {"big": 0b110000}


def test_a_list_expired_between_pages_is_read_again_from_the_start(api, cluster, start_extender):
    cluster.put("nodes", make_node("big", "inf2.48xlarge"))
    for i in range(600):
        cluster.put("pods", make_pod(f"idle-{i}"))
    cluster.put("pods", running_pod("last", "big", [4, 5]))
    api.fail("GET", r"^/api/v1/pods$", 410, "Expired", "continue too old", after=1)
    ext = start_extender()
    lists = [c.query for c in api.calls_of("GET", "/api/v1/pods") if "watch" not in c.query]
    assert [bool(q.get("continue")) for q in lists] == [False, True, False, True]
    assert ext.extender.state.usage() == {"big": 0b110000}


def test_list_timeout_has_a_flag_and_an_environment_variable(monkeypatch):
    monkeypatch.delenv("NEURON_EXTENDER_LIST_TIMEOUT", raising=False)
    assert cli.parser().parse_args([]).list_timeout == 60.0
    assert cli.parser().parse_args(["--list-timeout", "90"]).list_timeout == 90.0
    monkeypatch.setenv("NEURON_EXTENDER_LIST_TIMEOUT", "120")
    assert cli.parser().parse_args([]).list_timeout == 120.0
