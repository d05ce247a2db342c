"""The plugin corrects extender annotations that lie: when the kubelet admits identical pods in
another order than their NEURON_ALLOC_TIME, each container gets the set planned for another pod,
and the plugin rewrites the annotations to what each container really got (PodResources joined
with its own Allocate answers)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from dp_harness import NEURONCORE, FakeApi, FakeKubelet, FakePodResources, allocate, make_pod
from dp_harness import wait_until as wait
from neuron_k8s.allocator import Placement, Resource, mask, placement_of
from neuron_k8s.deviceplugin.ledger import Given, Ledger, PodRecord, pod_record
from neuron_k8s.deviceplugin.plugin import Plugin
from neuron_k8s.pods import (
    ALLOCATION,
    AWS_NEURON_IDS,
    NEURON_ALLOCATED,
    ContainerAllocation,
    allocation_annotations,
)
from neuron_k8s.topology import shape_for

NODE = "node-a"
TYPE = "inf2.24xlarge"
SHAPE = shape_for(TYPE)
CORE = Resource.NEURONCORE
StartPlugin = Callable[..., Plugin]


def cores(*c: int) -> Placement:
    return placement_of(SHAPE, CORE, mask(c))


def notes(chosen: tuple[int, ...], alloc_time: int) -> dict[str, str]:
    return allocation_annotations(NODE, [ContainerAllocation("m", cores(*chosen))], alloc_time)


def annotated(api: FakeApi, name: str) -> tuple[list[int], str, str | None]:
    a = api.pod("default", name)["metadata"]["annotations"]
    detail = json.loads(a[ALLOCATION])
    return detail["containers"][0]["cores"], a[AWS_NEURON_IDS], a.get(NEURON_ALLOCATED)


def pod_patches(api: FakeApi, name: str) -> list[dict[str, Any]]:
    return [b for p, _, b in list(api.patches) if p == f"/api/v1/namespaces/default/pods/{name}"]


def corrected(plugin: Plugin, kind: str) -> float:
    value = plugin.metrics.registry.get_sample_value(
        "neuron_device_plugin_allocations_corrected_total", {"kind": kind}
    )
    return value or 0.0


@pytest.fixture
def pr(short_dir: str) -> Iterator[FakePodResources]:
    server = FakePodResources(os.path.join(short_dir, "pr.sock")).start()
    yield server
    server.stop()


@pytest.fixture
def start(
    start_plugin: StartPlugin, api: FakeApi, pr: FakePodResources, short_dir: str
) -> Callable[..., Plugin]:
    """A plugin with the API and PodResources; polls only when the test says so (poll())
    unless `soon` is given."""
    api.add_node(NODE, {"node.kubernetes.io/instance-type": TYPE})

    def go(soon: float = 600.0) -> Plugin:
        plugin = start_plugin(
            fake_instance_type=TYPE,
            kubeconfig=api.kubeconfig(os.path.join(short_dir, "kubeconfig")),
            node_name=NODE,
            pod_resources_socket=pr.socket_path,
            pod_resources_interval=600.0,
            pod_resources_soon=soon,
        )
        wait(lambda: plugin._pods is not None and plugin._pods.synced, 5, "pods synced")
        return plugin

    return go


def two_pods(api: FakeApi) -> None:
    """a was bound first (plan 4,5), b second (plan 6,7); both ask for 2 cores."""
    api.put_pod(make_pod("a", NODE, [("m", NEURONCORE, 2)], {**notes((4, 5), 100), "x": "kept"}))
    api.put_pod(make_pod("b", NODE, [("m", NEURONCORE, 2)], {**notes((6, 7), 200), "x": "kept"}))


def admit(kubelet: FakeKubelet, pr: FakePodResources, pod: str, kubelet_ids: list[str]) -> str:
    """The kubelet admits `pod`: Allocate with its IDs, then PodResources lists them."""
    resp = allocate(kubelet.stub(NEURONCORE), kubelet_ids)
    pr.assigned[("default", pod, "m")] = {NEURONCORE: kubelet_ids}
    return resp.container_responses[0].envs["NEURON_RT_VISIBLE_CORES"]


def swapped(plugin: Plugin, kubelet: FakeKubelet, pr: FakePodResources) -> dict[str, str]:
    """The kubelet admits b before a (GetPreferredAllocation steered each to the oldest plan)."""
    got = {"b": admit(kubelet, pr, "b", ["4", "5"]), "a": admit(kubelet, pr, "a", ["6", "7"])}
    assert got == {"b": "4,5", "a": "6,7"}  # the guess was wrong for both
    state = plugin.state
    assert state is not None
    wait(
        lambda: all(r.allocated for r in state.ledger.pods.values()),
        5,
        "the watch delivered both NEURON_ALLOCATED marks",
    )
    plugin._poll_kubelet()
    return got


# --- in-process, with the kubelet, API and PodResources stand-ins ---
def test_pods_admitted_against_their_alloc_time_order_end_with_annotations_of_what_they_got(
    kubelet: FakeKubelet, api: FakeApi, pr: FakePodResources, start: Callable[..., Plugin]
) -> None:
    two_pods(api)
    plugin = start()
    swapped(plugin, kubelet, pr)
    wait(lambda: annotated(api, "a")[:2] == ([6, 7], "6,7"), 5, "a corrected")
    wait(lambda: annotated(api, "b")[:2] == ([4, 5], "4,5"), 5, "b corrected")
    assert corrected(plugin, "admitted") == 2


def test_correction_lands_soon_after_allocate_without_waiting_for_the_regular_poll(
    kubelet: FakeKubelet, api: FakeApi, pr: FakePodResources, start: Callable[..., Plugin]
) -> None:
    two_pods(api)
    plugin = start(soon=0.05)
    # After the start-up poll, only the poll the Allocate asks for can make the correction.
    wait(lambda: plugin.polls >= 1, 5, "the start-up poll")
    pr.assigned[("default", "b", "m")] = {NEURONCORE: ["4", "5"]}
    assert (
        allocate(kubelet.stub(NEURONCORE), ["4", "5"])
        .container_responses[0]
        .envs["NEURON_RT_VISIBLE_CORES"]
        == "4,5"
    )
    wait(lambda: annotated(api, "b")[:2] == ([4, 5], "4,5"), 5, "b corrected")
    # The start-up poll and the one the Allocate asked for (counted after its correction).
    wait(lambda: plugin.polls >= 2, 5, "the poll the Allocate asked for")


def test_correct_annotation_is_not_patched(
    kubelet: FakeKubelet, api: FakeApi, pr: FakePodResources, start: Callable[..., Plugin]
) -> None:
    two_pods(api)
    plugin = start()
    assert admit(kubelet, pr, "a", ["4", "5"]) == "4,5"
    for _ in range(3):
        plugin._poll_kubelet()
    assert pod_patches(api, "a") == [{"metadata": {"annotations": {NEURON_ALLOCATED: "true"}}}]
    assert pod_patches(api, "b") == []
    assert corrected(plugin, "admitted") == corrected(plugin, "pending") == 0


def test_correction_is_a_merge_patch_of_the_two_id_keys_only(
    kubelet: FakeKubelet, api: FakeApi, pr: FakePodResources, start: Callable[..., Plugin]
) -> None:
    two_pods(api)
    plugin = start()
    swapped(plugin, kubelet, pr)
    wait(lambda: annotated(api, "a")[0] == [6, 7], 5, "a corrected")
    fixes = [b for b in pod_patches(api, "a") if ALLOCATION in b["metadata"]["annotations"]]
    assert len(fixes) == 1
    assert set(fixes[0]) == {"metadata"} and set(fixes[0]["metadata"]) == {"annotations"}
    assert set(fixes[0]["metadata"]["annotations"]) == {ALLOCATION, AWS_NEURON_IDS}
    content_types = {c for p, c, _ in api.patches if "/pods/" in p}
    assert content_types == {"application/merge-patch+json"}
    a = api.pod("default", "a")["metadata"]["annotations"]
    assert a["x"] == "kept" and a["NEURON_ALLOC_TIME"] == "100"
    assert json.loads(a[ALLOCATION]) == {
        "node": NODE,
        "containers": [
            {"name": "m", "resource": NEURONCORE, "ids": [6, 7], "cores": [6, 7], "devices": [3]}
        ],
    }


def test_ledger_has_no_overlap_after_a_correction(
    kubelet: FakeKubelet, api: FakeApi, pr: FakePodResources, start: Callable[..., Plugin]
) -> None:
    two_pods(api)
    plugin = start()
    swapped(plugin, kubelet, pr)
    assert plugin.state is not None
    for when in ("before the patches arrive", "after"):
        if when == "after":
            wait(lambda: annotated(api, "b")[0] == [4, 5], 5, "b corrected")
            wait(
                lambda: (
                    plugin.state.ledger.pods["uid-default-b"].containers[0].placement == cores(4, 5)
                ),
                5,
                "watch delivered the correction",
            )
        with plugin.state.lock:
            uses = [u for u in plugin.state.ledger.uses() if u.pod in ("default/a", "default/b")]
            by_pod = {}
            for u in uses:
                by_pod[u.pod] = by_pod.get(u.pod, 0) | u.cores
        assert by_pod == {"default/a": mask([6, 7]), "default/b": mask([4, 5])}, when


def test_pod_deleted_after_a_correction_frees_exactly_its_real_cores(
    kubelet: FakeKubelet, api: FakeApi, pr: FakePodResources, start: Callable[..., Plugin]
) -> None:
    two_pods(api)
    plugin = start()
    swapped(plugin, kubelet, pr)
    wait(lambda: annotated(api, "b")[0] == [4, 5], 5, "b corrected")
    assert plugin.state is not None
    api.delete_pod("default", "b")
    del pr.assigned[("default", "b", "m")]
    wait(lambda: "uid-default-b" not in plugin.state.ledger.pods, 5, "b gone from the view")
    plugin._poll_kubelet()
    with plugin.state.lock:
        assert plugin.state.ledger.used_cores() == mask([6, 7])
    # b's real cores are free again: a new pod planned on them is served.
    api.put_pod(make_pod("c", NODE, [("m", NEURONCORE, 2)], notes((4, 5), 300)))
    wait(lambda: "uid-default-c" in plugin.state.ledger.pods, 5, "c seen")
    assert admit(kubelet, pr, "c", ["4", "5"]) == "4,5"


def test_pod_still_waiting_is_served_the_set_its_swapped_neighbour_left(
    kubelet: FakeKubelet, api: FakeApi, pr: FakePodResources, start: Callable[..., Plugin]
) -> None:
    two_pods(api)
    plugin = start()
    # b is admitted with a's plan, and the correction runs before a is admitted.
    assert admit(kubelet, pr, "b", ["4", "5"]) == "4,5"
    plugin._poll_kubelet()
    wait(lambda: annotated(api, "b") == ([4, 5], "4,5", "true"), 5, "b corrected and marked")
    wait(lambda: annotated(api, "a") == ([6, 7], "6,7", "false"), 5, "a moved to b's plan")
    assert corrected(plugin, "pending") == 1
    wait(
        lambda: (
            plugin.state is not None
            and plugin.state.ledger.pods["uid-default-a"].containers[0].placement == cores(6, 7)
        ),
        5,
        "watch delivered a's new plan",
    )
    assert admit(kubelet, pr, "a", ["6", "7"]) == "6,7"
    wait(lambda: annotated(api, "a") == ([6, 7], "6,7", "true"), 5, "a marked allocated")


# --- the ledger alone ---
def record(name: str, chosen: tuple[int, ...], alloc_time: int) -> PodRecord:
    r = pod_record(make_pod(name, NODE, [("m", NEURONCORE, 2)], notes(chosen, alloc_time)), SHAPE)
    assert r is not None
    return r


def test_truth_wins_over_swapped_annotations_before_any_patch() -> None:
    ledger = Ledger(SHAPE)
    a, b = record("a", (4, 5), 100), record("b", (6, 7), 200)
    ledger.set_pods([a, b])
    ledger.remember(Given(CORE, (4, 5), cores(4, 5), a.uid, a.key, "m"))
    ledger.remember(Given(CORE, (6, 7), cores(6, 7), b.uid, b.key, "m"))
    ledger.set_kubelet(
        {("default", "b", "m"): {CORE: (4, 5)}, ("default", "a", "m"): {CORE: (6, 7)}}
    )
    effective = ledger.effective_pods()
    assert effective[a.uid].containers[0].placement == cores(6, 7)
    assert effective[b.uid].containers[0].placement == cores(4, 5)
    owners = {u.owner: u.cores for u in ledger.uses()}
    assert owners == {"default/a/m": mask([6, 7]), "default/b/m": mask([4, 5])}


def test_pending_pod_whose_plan_went_elsewhere_inherits_the_freed_plan_and_waits_again() -> None:
    ledger = Ledger(SHAPE)
    a, b = record("a", (4, 5), 100), record("b", (6, 7), 200)
    ledger.set_pods([a, b])
    ledger.remember(Given(CORE, (4, 5), cores(4, 5), a.uid, a.key, "m"))
    ledger.set_kubelet({("default", "b", "m"): {CORE: (4, 5)}})
    assert ledger.effective_pods()[a.uid].containers[0].placement == cores(6, 7)
    done, reopened = ledger.progress()
    assert reopened == {a.uid} and done == {b.uid: {"m"}}
    assert ledger.used_cores() == mask([4, 5, 6, 7])


def test_no_pod_is_reopened_while_an_answer_of_its_kind_is_unconfirmed() -> None:
    # Seen on kind: the kubelet admitted b with a's plan (4,5), then a with b's plan (6,7);
    # PodResources listed b but not yet a. Reopening a then would hand 6,7 out twice.
    ledger = Ledger(SHAPE)
    a, b, c = record("a", (4, 5), 100), record("b", (6, 7), 200), record("c", (8, 9), 300)
    ledger.set_pods([a, b, c])
    ledger.remember(Given(CORE, (4, 5), cores(4, 5), a.uid, a.key, "m"))  # really b
    ledger.remember(Given(CORE, (6, 7), cores(6, 7), b.uid, b.key, "m"))  # really a
    ledger.set_kubelet({("default", "b", "m"): {CORE: (4, 5)}})
    done, reopened = ledger.progress()
    assert reopened == set()
    assert done == {b.uid: {"m"}}
    # Once the kubelet lists a too, both are accounted for and nothing is reopened either.
    ledger.set_kubelet(
        {("default", "b", "m"): {CORE: (4, 5)}, ("default", "a", "m"): {CORE: (6, 7)}}
    )
    assert ledger.progress() == ({a.uid: {"m"}, b.uid: {"m"}}, set())


def test_without_a_remembered_answer_the_annotation_is_trusted() -> None:
    ledger = Ledger(SHAPE)
    a = record("a", (4, 5), 100)
    ledger.set_pods([a])
    ledger.set_kubelet({("default", "a", "m"): {CORE: (0, 1)}})  # e.g. after a plugin restart
    assert ledger.effective_pods()[a.uid] == a
    assert ledger.used_cores() == mask([4, 5])


def test_kubelet_handing_out_ids_again_forgets_the_older_answer() -> None:
    ledger = Ledger(SHAPE)
    ledger.remember(Given(CORE, (4, 5), cores(8, 9)))
    ledger.remember(Given(CORE, (5, 6), cores(5, 6)))
    assert list(ledger.given) == [(CORE, (5, 6))]


def test_answers_for_pods_that_are_gone_do_not_keep_a_swapped_pod_waiting() -> None:
    # Seen on kind: answers for an earlier test's pods, never listed again, kept a pod that
    # had lost its set to a neighbour from being served again.
    ledger = Ledger(SHAPE)
    a, b = record("a", (4, 5), 100), record("b", (6, 7), 200)
    gone = record("gone", (0, 1), 50)
    ledger.set_pods([a, b])
    ledger.remember(Given(CORE, (0, 1), cores(0, 1), gone.uid, gone.key, "m"))
    ledger.remember(Given(CORE, (4, 5), cores(4, 5), a.uid, a.key, "m"))  # really b
    ledger.set_kubelet({("default", "b", "m"): {CORE: (4, 5)}})
    done, reopened = ledger.progress()
    assert reopened == {a.uid}
    assert done == {b.uid: {"m"}}
