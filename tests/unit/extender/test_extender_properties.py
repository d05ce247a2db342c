"""Property tests of the allocator-based state: after any sequence of binds, failed binds,
completions and deletions, no core is held twice on a node, and the view equals one rebuilt
from the pods alone (what a restarted extender would see).

The extender's bind runs for real; the API is the fake cluster called in-process, with watch
events delivered synchronously after each call, so that hypothesis can run hundreds of
sequences in a few seconds.
"""

from __future__ import annotations

import json
from typing import Any

from extender_fakeapi import POD_PATH, Failure, FakeCluster
from extender_helpers import CORE, NEURON, binding_args, make_node, make_pod, running_pod
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from neuron_k8s.allocator import NoFit, Request, Resource, candidates, choose_all
from neuron_k8s.extender.fit import evaluate, room
from neuron_k8s.extender.protocol import (
    NamesCache,
    parse_binding_args,
    parse_extender_args,
    read_extender_args,
)
from neuron_k8s.extender.scoring import scores
from neuron_k8s.extender.state import ClusterState
from neuron_k8s.extender.verbs import Extender
from neuron_k8s.kube import ApiError
from neuron_k8s.pods import read_allocation
from neuron_k8s.topology import shape_for

NODE_TYPES = ["inf2.48xlarge", "inf2.24xlarge", "trn1.32xlarge", "inf1.6xlarge", "inf2.xlarge"]


class LocalClient:
    """KubeClient's get/merge_patch/post over a FakeCluster, in-process. `fail_next` makes the
    next Binding fail like the API server would: refused (422), lost (applied, answered 500),
    or unknown (not applied, answered 500, and the pod cannot be read back)."""

    def __init__(self, cluster: FakeCluster, state: ClusterState) -> None:
        self.cluster = cluster
        self.state = state
        self.delivered = {"pods": 0, "nodes": 0}
        self.fail_next: str | None = None
        self._unreadable = False

    def pump(self) -> None:
        """Deliver the watch events not yet seen, in order."""
        for kind, apply in (("pods", self.state.apply_pod), ("nodes", self.state.apply_node)):
            for rv, event, obj in self.cluster.history[kind]:
                if rv > self.delivered[kind]:
                    apply(event, obj)
                    self.delivered[kind] = rv

    def _call(self, path: str, fn: Any) -> dict[str, Any]:
        try:
            return fn(POD_PATH.match(path))
        except Failure as f:
            raise ApiError(f.code, f.reason, f.message) from None

    def get(self, path: str, params: Any = None) -> dict[str, Any]:
        if self._unreadable:
            self._unreadable = False
            raise ApiError(503, "ServiceUnavailable", "injected")
        return self._call(path, lambda m: self.cluster.get("pods", f"{m[1]}/{m[2]}"))

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        mode, self.fail_next = self.fail_next, None
        if mode == "refused":
            raise ApiError(422, "Invalid", "injected")
        if mode == "unknown":
            self._unreadable = True
            raise ApiError(500, "InternalError", "injected")

        def bind(m: Any) -> dict[str, Any]:
            self.cluster.bind_pod(f"{m[1]}/{m[2]}", body)
            return {}

        result = self._call(path, bind)
        if mode == "lost":
            raise ApiError(500, "InternalError", "injected after the write")
        return result


# Mostly small requests, so that nodes fill up and refusals come from usage, not size.
requests = st.one_of(
    st.tuples(st.just(CORE), st.sampled_from([1, 1, 1, 2, 2, 3, 4, 8])),
    st.tuples(st.just(NEURON), st.sampled_from([1, 1, 2, 4, 12, 16])),
)
pods = st.lists(requests, min_size=1, max_size=2)
ops = st.lists(
    st.one_of(
        st.tuples(st.just("bind"), pods, st.integers(0, 3)),
        st.tuples(
            st.just("bind_fails"),
            pods,
            st.integers(0, 3),
            st.sampled_from(["refused", "lost", "unknown"]),
        ),
        st.tuples(st.just("delete"), st.integers(0, 50)),
        st.tuples(st.just("finish"), st.integers(0, 50)),
    ),
    min_size=8,
    max_size=40,
)


def _rebuilt(cluster: FakeCluster) -> ClusterState:
    fresh = ClusterState()
    fresh.replace_nodes(cluster.list("nodes")["items"])
    fresh.replace_pods(cluster.list("pods")["items"])
    return fresh


def _assert_no_core_twice(cluster: FakeCluster) -> None:
    held: dict[str, set[int]] = {}
    for pod in cluster.list("pods")["items"]:
        if pod["status"].get("phase") in ("Succeeded", "Failed"):
            continue
        recorded = read_allocation(pod)
        if recorded is None:
            continue
        node, allocs = recorded
        for a in allocs:
            cores = set(a.placement.cores)
            assert not cores & held.setdefault(node, set()), f"core held twice on {node}"
            held[node] |= cores


@settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(node_types=st.lists(st.sampled_from(NODE_TYPES), min_size=1, max_size=4), ops=ops)
def test_binds_and_departures_never_double_book_and_match_a_rebuild(node_types, ops):
    cluster = FakeCluster()
    for i, t in enumerate(node_types):
        cluster.put("nodes", make_node(f"n{i}", t, unhealthy="1" if i == 3 else None))
    state = ClusterState()
    client = LocalClient(cluster, state)
    state.replace_nodes(cluster.list("nodes")["items"])
    state.replace_pods([])
    client.pump()
    extender = Extender(client, state)  # type: ignore[arg-type]
    created: list[str] = []
    unknown: set[str] = set()

    for n, op in enumerate(ops):
        kind = op[0]
        if kind in ("bind", "bind_fails"):
            containers = [(f"c{j}", {res: str(count)}) for j, (res, count) in enumerate(op[1])]
            pod = cluster.put("pods", make_pod(f"p{n}", containers))
            created.append(f"default/p{n}")
            client.pump()
            node = f"n{op[2] % len(node_types)}"
            if kind == "bind_fails":
                client.fail_next = op[3]
            outcome = extender.bind(parse_binding_args(binding_args(pod, node)))
            if kind == "bind_fails" and op[3] != "lost":
                assert outcome.error
            if kind == "bind_fails" and op[3] == "unknown" and outcome.outcome == "api_error":
                unknown.add(pod["metadata"]["uid"])
            client.fail_next = None
        elif created:
            key = created[op[1] % len(created)]
            if key in cluster.objects["pods"]:
                if kind == "delete":
                    cluster.delete("pods", key)
                else:
                    cluster.set_phase(key, "Succeeded")
        client.pump()

        _assert_no_core_twice(cluster)
        # Only binds whose outcome nobody could tell keep a reservation, held as if bound.
        held = state.reservations()
        assert set(held) <= unknown
        fresh = _rebuilt(cluster)
        expected = fresh.usage()
        for r in held.values():
            expected[r.node] = expected.get(r.node, 0) | r.cores
        assert state.usage() == expected
        assert state.pod_uses() == fresh.pod_uses()


@settings(max_examples=400, deadline=None, derandomize=True)
@given(
    itype=st.sampled_from(NODE_TYPES),
    used_bits=st.integers(min_value=0, max_value=(1 << 32) - 1),
    unhealthy_bits=st.integers(min_value=0, max_value=(1 << 16) - 1),
    request=requests,
)
def test_filter_verdict_agrees_with_what_bind_would_choose(
    itype, used_bits, unhealthy_bits, request
):
    # filter tests for any free valid set; bind ranks them all. They must agree on whether
    # one exists.
    shape = shape_for(itype)
    used = used_bits & ((1 << shape.cores) - 1)
    unhealthy = unhealthy_bits & ((1 << shape.devices) - 1) if unhealthy_bits % 3 == 0 else 0
    req = (Request(Resource(request[0]), request[1]),)
    try:
        choose_all(shape, req, used, unhealthy)
    except NoFit:
        assert evaluate(shape, req, used, unhealthy).reason is not None
    else:
        assert evaluate(shape, req, used, unhealthy).reason is None


def _most_disjoint(cands: tuple[int, ...], blocked: int) -> int:
    """Exhaustive: the most pairwise disjoint free sets among `cands`."""
    best = 0
    for i, c in enumerate(cands):
        if not c & blocked:
            best = max(best, 1 + _most_disjoint(cands[i + 1 :], blocked | c))
    return best


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    itype=st.sampled_from(["inf1.6xlarge", "inf2.24xlarge", "inf2.xlarge"]),
    blocked_bits=st.integers(min_value=0, max_value=(1 << 16) - 1),
    request=requests,
)
def test_room_counts_the_most_pods_that_still_fit_together(itype, blocked_bits, request):
    shape = shape_for(itype)
    blocked = blocked_bits & ((1 << shape.cores) - 1)
    req = Request(Resource(request[0]), request[1])
    assert room(shape, req, blocked) == _most_disjoint(candidates(shape, req), blocked)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.dictionaries(st.integers(0, 50), st.integers(0, 10_000), min_size=1))
def test_scores_give_ten_to_the_cheapest_and_at_most_seven_to_the_rest(milli):
    # Costs closer than a relative 1e-9 count as equal; these are a thousandth apart at least.
    cost = {cls: m / 1000 for cls, m in milli.items()}
    result = scores(cost)
    cheapest = min(cost.values())
    for cls, c in cost.items():
        if c == cheapest:
            assert result[cls] == 10
        else:
            assert 0 <= result[cls] <= 7


change = st.one_of(
    st.tuples(st.just("hold"), st.integers(0, 11), st.integers(0, 15), st.integers(1, 4)),
    st.tuples(st.just("free"), st.integers(0, 40)),
    st.tuples(st.just("node"), st.integers(0, 11), st.sampled_from([*NODE_TYPES, "m5.large"])),
    st.tuples(st.just("drop_node"), st.integers(0, 11)),
    st.tuples(st.just("filter"), st.sampled_from([(CORE, 1), (CORE, 4), (NEURON, 1)])),
)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(change, min_size=5, max_size=40))
def test_filter_on_a_repeated_node_list_matches_a_fresh_lookup(changes):
    # The extender keeps the classes of a candidate list it has seen and updates them from
    # the state's change log; its answers must equal those of a plain lookup, whatever happens
    # in between.
    state = ClusterState()
    state.replace_nodes([make_node(f"n{i}", NODE_TYPES[i % len(NODE_TYPES)]) for i in range(10)])
    state.replace_pods([])
    extender = Extender(None, state)  # type: ignore[arg-type]
    cache = NamesCache()
    names = [f"n{i}" for i in range(12)]  # n10 and n11 unknown until added
    pods: list[dict] = []
    for n, ch in enumerate(changes):
        if ch[0] == "hold":
            cores = list(range(ch[2], ch[2] + ch[3]))
            pod = running_pod(f"h{n}", f"n{ch[1]}", cores)
            pods.append(pod)
            state.apply_pod("ADDED", pod)
        elif ch[0] == "free" and pods:
            state.apply_pod("DELETED", pods.pop(ch[1] % len(pods)))
        elif ch[0] == "node":
            state.apply_node("MODIFIED", make_node(f"n{ch[1]}", ch[2]))
        elif ch[0] == "drop_node":
            state.apply_node("DELETED", make_node(f"n{ch[1]}"))
        elif ch[0] == "filter":
            pod = make_pod(f"f{n}", [("m", {ch[1][0]: str(ch[1][1])})])
            body = json.dumps(
                {"Pod": pod, "Nodes": None, "NodeNames": names}, separators=(",", ":")
            ).encode()
            fast = extender.filter(read_extender_args(body, cache))
            plain = extender.filter(parse_extender_args(json.loads(body)))
            assert fast == plain
