"""A pod the watch shows Succeeded or Failed has had its containers stopped by the kubelet: what
it held is free at once, its regular init containers' IDs included, even while the pod stays
in the API (a Job's pod) and even if PodResources still lists it (reviews A2, S5)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dp_harness import NEURON, NEURONCORE, Admission, FakeApi, FakeKubelet, make_pod, wait_until
from neuron_k8s.allocator import Resource
from neuron_k8s.deviceplugin.plugin import Plugin
from neuron_k8s.deviceplugin.podview import PodView
from planned_pods import NODE, plan, put, put_planned

Node = Callable[..., tuple[Plugin, Admission]]
JOB = [("warmup", NEURON, 1, "init"), ("m", NEURON, 1)]


def run_job(api: FakeApi, plugin: Plugin, kubelet: Admission) -> dict[str, Any]:
    """A Job's pod with a Neuron init container, planned on device 0, admitted."""
    notes = plan(("warmup", Resource.NEURON, [0]), ("m", Resource.NEURON, [0]))
    pod = make_pod("job", NODE, [("m", NEURON, 1)], notes, init=[("warmup", NEURON, 1)])
    put(api, plugin, pod)
    assert kubelet.admit("job", JOB) == {"warmup": "0,1", "m": "0,1"}
    assert plugin.state is not None
    wait_until(lambda: plugin.state is not None and plugin.state.ledger.held(), 5, "held")
    return pod


def end(api: FakeApi, pod: dict[str, Any], phase: str) -> None:
    """The pod's containers end and the watch shows it `phase`; the kubelet still lists it."""
    pod["status"] = {"phase": phase, "containerStatuses": [{"name": "m"}]}
    api.put_pod(pod, "MODIFIED")


def finished(pods: PodView) -> bool:
    return not pods.pods()["uid-default-job"].holds


def test_a_finished_jobs_cores_are_served_to_the_next_pod_planned_on_them(
    api: FakeApi, node: Node
) -> None:
    # Failed on e7426af: Allocate refused "NeuronCores 0,1 are held by default/job/warmup".
    plugin, kubelet = node()
    end(api, run_job(api, plugin, kubelet), "Succeeded")
    wait_until(lambda: plugin.pods is not None and finished(plugin.pods), 5, "job seen finished")
    put_planned(api, plugin, "next", Resource.NEURONCORE, [0, 1])
    assert kubelet.admit("next", [("m", NEURONCORE, 2)]) == {"m": "0,1"}


def test_a_failed_pods_holdings_stay_free_though_pod_resources_still_lists_it(
    api: FakeApi, node: Node
) -> None:
    plugin, kubelet = node()
    end(api, run_job(api, plugin, kubelet), "Failed")
    wait_until(lambda: plugin.state is not None and not plugin.state.ledger.held(), 5, "freed")
    assert plugin.reconciler is not None
    plugin.poll_once()  # a fresh List that still shows default/job/m on device 0
    assert plugin.state is not None and not plugin.state.ledger.held()


def test_standalone_a_finished_jobs_ids_are_advertised_healthy_again(
    api: FakeApi, kubelet: FakeKubelet, node: Node
) -> None:
    # Failed on e7426af: cores 0,1 stayed withheld until the Job's pod was deleted.
    plugin, admission = node(withhold_in_use=True)
    pod = run_job(api, plugin, admission)
    wait_until(lambda: kubelet.unhealthy(NEURONCORE) == {"0", "1"}, 5, "cores 0,1 withheld")
    end(api, pod, "Succeeded")
    wait_until(lambda: not kubelet.unhealthy(NEURONCORE), 5, "cores 0,1 healthy again")
