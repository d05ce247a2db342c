"""The reconciler records on each pod what its containers hold: swapped records are corrected
together (review A9), nothing is confirmed from the plugin's own answers alone while
PodResources is down (A9), a pod placed without the extender is patched once, not every round
(D9), and a container covered by reused init-container IDs is attributed right (A11)."""

from __future__ import annotations

import itertools

from dp_harness import NEURONCORE, make_pod
from local_node import NODE, Node
from neuron_k8s.deviceplugin.reconcile import Reconciler
from neuron_k8s.pods import NEURON_ALLOCATED


def annotations(node: Node, name: str) -> dict[str, str]:
    notes: dict[str, str] = node.pods.objects[f"uid-default-{name}"]["metadata"]["annotations"]
    return notes


def started(node: Node, name: str) -> None:
    node.pods.objects[f"uid-default-{name}"]["status"]["containerStatuses"] = [{"name": "m"}]


def test_swapped_records_are_corrected_together_in_one_round() -> None:
    # Failed on e7426af: each correction waited for the other's record to move, forever.
    node = Node("inf2.24xlarge")
    assert node.bind("a", [("m", NEURONCORE, 2)]) and node.bind("b", [("m", NEURONCORE, 2)])
    planned = {name: node.plan_of(name)["m"] for name in ("a", "b")}
    assert planned["a"] != planned["b"]
    # The kubelet admitted each on the other's plan.
    for name, other in (("a", "b"), ("b", "a")):
        node.pr.assigned[("default", name, "m")] = {NEURONCORE: [str(i) for i in planned[other]]}
        started(node, name)
    assert node.reconciler.run_once() == 2
    assert node.recorded("a") == {"m": planned["b"]}
    assert node.recorded("b") == {"m": planned["a"]}
    assert all(annotations(node, n)[NEURON_ALLOCATED] == "true" for n in ("a", "b"))


def test_a_correction_onto_cores_another_record_still_claims_waits() -> None:
    node = Node("inf2.24xlarge")
    assert node.bind("a", [("m", NEURONCORE, 2)]) and node.bind("w", [("m", NEURONCORE, 2)])
    taken = node.plan_of("w")["m"]
    node.pr.assigned[("default", "a", "m")] = {NEURONCORE: [str(i) for i in taken]}
    started(node, "a")
    assert node.reconciler.run_once() == 0  # w is not admitted: its record stays
    assert node.recorded("a") != {"m": taken}


def test_nothing_is_confirmed_from_the_plugins_own_answers_while_pod_resources_is_down() -> None:
    # Failed on e7426af: the record was confirmed (NEURON_ALLOCATED=true) from the answers,
    # which name a pod only as far as the plugin could tell without PodResources.
    node = Node("inf2.24xlarge")
    assert node.bind("p", [("m", NEURONCORE, 2)])
    node.pr.down = True
    node.admit("p")
    node.reconciler.run_once()
    assert annotations(node, "p")[NEURON_ALLOCATED] == "false"
    node.pr.down = False
    node.reconciler.run_once()
    assert annotations(node, "p")[NEURON_ALLOCATED] == "true"


def test_a_pod_placed_without_the_extender_is_patched_once_while_the_watch_lags() -> None:
    # Failed on e7426af: a fresh NEURON_ALLOC_TIME every round made every round patch again.
    node = Node("inf2.24xlarge")
    node.pods.objects["uid-default-plain"] = make_pod("plain", NODE, [("m", NEURONCORE, 2)])
    node.admit("plain")
    node.pods.apply_patches = False
    ticks = itertools.count(1)
    reconciler = Reconciler(
        node.state,
        node.pods,  # type: ignore[arg-type]
        node.pr,  # type: ignore[arg-type]
        node.metrics,
        clock_ns=lambda: next(ticks),
    )
    reconciler.run_once()
    reconciler.run_once()
    assert [name for name, _ in node.pods.patches] == ["plain"]


def test_a_container_covered_by_reused_init_ids_is_attributed_to_itself() -> None:
    # Failed on e7426af: i2's Allocate (no preference before it) was unlabelled, m's was taken
    # for i2's, and the pod was never recorded.
    node = Node("inf2.24xlarge")
    init = [("i1", NEURONCORE, 1), ("i2", NEURONCORE, 1)]
    assert node.bind("p", [("m", NEURONCORE, 2)], init=init)
    planned = node.plan_of("p")
    node.admit("p")
    assert node.got["p"] == planned
    node.reconciler.run_once()  # a List that shows m
    real = node.reconciler.real(node.pods.pods()["uid-default-p"])
    assert real is not None
    assert {a.container: list(a.placement.cores) for a in real} == planned
    assert annotations(node, "p")[NEURON_ALLOCATED] == "true"
