"""Until a PodResources List has succeeded, the plugin does not know what the kubelet holds: the
pods' validated records stand in for it, and the plugin does not report ready before it knows
either (review A4; docs/architecture.md, "The kubelet's IDs are the truth")."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections.abc import Callable

import grpc
import pytest
from dp_harness import (
    NEURON,
    NEURONCORE,
    Admission,
    FakeApi,
    FakeKubelet,
    FakePodResources,
    allocate,
    make_pod,
    wait_until,
)
from neuron_k8s.allocator import Resource
from neuron_k8s.deviceplugin.plugin import Plugin
from neuron_k8s.pods import NEURON_ALLOCATED
from planned_pods import NODE, cores, plan, put_planned

Node = Callable[..., tuple[Plugin, Admission]]


def running_on_device_0(api: FakeApi) -> None:
    """Pod a, recorded and running on device 0 before the plugin (re)starts."""
    notes = {**plan(("m", Resource.NEURON, [0])), NEURON_ALLOCATED: "true"}
    pod = make_pod("a", NODE, [("m", NEURON, 1)], notes, phase="Running")
    pod["status"]["containerStatuses"] = [{"name": "m", "state": {"running": {}}}]
    api.put_pod(pod)


def test_cores_of_a_device_held_by_record_are_refused_without_pod_resources(
    api: FakeApi, kubelet: FakeKubelet, node: Node
) -> None:
    # Failed on e7426af: the restarted plugin knew no holdings and served cores 0,1 twice.
    running_on_device_0(api)
    node(pod_resources_socket="")
    with pytest.raises(grpc.RpcError) as err:
        allocate(kubelet.stub(NEURONCORE), ["0", "1"])
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "held by default/a/m (by its record" in (err.value.details() or "")


def test_a_plan_on_cores_held_by_record_is_steered_elsewhere_without_pod_resources(
    api: FakeApi, node: Node
) -> None:
    running_on_device_0(api)
    plugin, kubelet = node(pod_resources_socket="")
    put_planned(api, plugin, "b", Resource.NEURONCORE, [0, 1])  # the extender's view lagged
    got = cores(kubelet.admit("b", [("m", NEURONCORE, 2)])["m"])
    assert not set(got) & {0, 1}


def test_standalone_cores_held_by_record_are_withheld_without_pod_resources(
    api: FakeApi, kubelet: FakeKubelet, node: Node
) -> None:
    running_on_device_0(api)
    node(pod_resources_socket="", withhold_in_use=True)
    wait_until(lambda: kubelet.unhealthy(NEURONCORE) == {"0", "1"}, 5, "cores 0,1 withheld")


def readyz(plugin: Plugin) -> tuple[int, str]:
    assert plugin.http is not None
    url = f"http://127.0.0.1:{plugin.http.port}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_not_ready_until_a_pod_resources_list_has_succeeded(
    kubelet: FakeKubelet, start_plugin: Callable[..., Plugin], short_dir: str
) -> None:
    # Failed on e7426af: ready as soon as registered, knowing nothing of what is held.
    sock = os.path.join(short_dir, "pr.sock")
    plugin = start_plugin(
        fake_instance_type="inf2.24xlarge", pod_resources_socket=sock, http_port=0
    )
    status, text = readyz(plugin)
    assert status == 503 and "no PodResources List has succeeded" in text
    pr = FakePodResources(sock).start()
    try:
        wait_until(lambda: readyz(plugin)[0] == 200, 10, "ready once listed")
    finally:
        pr.stop()


def test_ready_without_pod_resources_once_the_pod_watch_has_listed(
    api: FakeApi, node: Node
) -> None:
    plugin, _ = node(pod_resources_socket="", http_port=0)
    assert readyz(plugin)[0] == 200
