"""The plugin in-process against the kubelet stand-in: registration, ListAndWatch, health,
GetPreferredAllocation, Allocate (standalone and with extender annotations), conflicts across
the two resources, kubelet restarts, and the HTTP endpoints."""

from __future__ import annotations

import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable

import grpc
import pytest
from dp_harness import (
    NEURON,
    NEURONCORE,
    FakeApi,
    FakeKubelet,
    FakePodResources,
    allocate,
    ids,
    make_pod,
    preferred,
    wait_until,
)
from neuron_k8s.allocator import Resource, mask
from neuron_k8s.deviceplugin.api import pb
from neuron_k8s.deviceplugin.plugin import Plugin
from neuron_k8s.pods import (
    UNHEALTHY_DEVICES,
)

StartPlugin = Callable[..., Plugin]
NODE = "node-a"


def metric(plugin: Plugin, name: str, **labels: str) -> float:
    value = plugin.metrics.registry.get_sample_value(name, labels)
    return value or 0.0


# --- registration and options ---
def test_registers_both_resources_with_v1beta1_and_preferred_allocation(
    kubelet: FakeKubelet, start_plugin: StartPlugin
) -> None:
    start_plugin(fake_instance_type="inf2.24xlarge")
    by_resource = {r.resource_name: r for r in kubelet.registrations}
    assert set(by_resource) == {NEURON, NEURONCORE}
    assert re.fullmatch(r"neuron-devplugin-[0-9a-f]{8}\.sock", by_resource[NEURON].endpoint)
    assert re.fullmatch(r"neuroncore-devplugin-[0-9a-f]{8}\.sock", by_resource[NEURONCORE].endpoint)
    for r in by_resource.values():
        assert r.version == "v1beta1"
        assert r.options.get_preferred_allocation_available
        assert not r.options.pre_start_required


def test_plugin_options_advertise_preferred_allocation(
    kubelet: FakeKubelet, start_plugin: StartPlugin
) -> None:
    start_plugin(fake_instance_type="inf2.24xlarge")
    opts = kubelet.stub(NEURONCORE).GetDevicePluginOptions(pb.Empty(), timeout=5)
    assert opts.get_preferred_allocation_available and not opts.pre_start_required


def test_serves_before_registering_even_without_a_kubelet(
    short_dir: str, start_plugin: StartPlugin
) -> None:
    plugin = start_plugin(fake_instance_type="inf1.xlarge", wait=False)
    assert plugin.manager is not None
    assert all(os.path.exists(s.socket_path) for s in plugin.manager.servers)
    assert plugin.manager is not None and not plugin.manager.ready
    kubelet = FakeKubelet(short_dir).start()
    try:
        wait_until(lambda: plugin.manager is not None and plugin.manager.ready, 10, "register")
        assert {r.resource_name for r in kubelet.registrations} == {NEURON, NEURONCORE}
    finally:
        kubelet.stop()


# --- ListAndWatch and health ---
def test_list_and_watch_streams_every_device_and_core_healthy(
    kubelet: FakeKubelet, start_plugin: StartPlugin
) -> None:
    start_plugin(fake_instance_type="inf2.24xlarge")
    wait_until(lambda: kubelet.health(NEURONCORE) and kubelet.health(NEURON), 5, "streams")
    assert kubelet.health(NEURON) == {str(i): "Healthy" for i in range(6)}
    assert kubelet.health(NEURONCORE) == {str(i): "Healthy" for i in range(12)}


def test_unhealthy_device_and_its_cores_reach_the_kubelet_and_recover(
    kubelet: FakeKubelet, start_plugin: StartPlugin, short_dir: str
) -> None:
    health = os.path.join(short_dir, "health")
    start_plugin(fake_instance_type="inf2.24xlarge", fake_health_file=health)
    wait_until(lambda: kubelet.health(NEURONCORE), 5, "stream")
    with open(health, "w") as f:
        f.write("2\n")
    wait_until(lambda: kubelet.unhealthy(NEURON) == {"2"}, 5, "device 2 unhealthy")
    wait_until(lambda: kubelet.unhealthy(NEURONCORE) == {"4", "5"}, 5, "cores 4,5 unhealthy")
    os.unlink(health)
    wait_until(lambda: not kubelet.unhealthy(NEURON), 5, "device 2 healthy again")
    wait_until(lambda: not kubelet.unhealthy(NEURONCORE), 5, "cores healthy again")


def with_health_file(
    start_plugin: StartPlugin, api: FakeApi, short_dir: str, instance_type: str
) -> tuple[Plugin, str, Callable[[], dict[str, str]]]:
    """A plugin with a fake health file and the API; its health file path, and a reader of
    the node's annotations."""
    health = os.path.join(short_dir, "health")
    plugin = start_plugin(
        fake_instance_type=instance_type,
        fake_health_file=health,
        kubeconfig=api.kubeconfig(os.path.join(short_dir, "kubeconfig")),
        node_name=NODE,
    )
    return plugin, health, lambda: api.nodes[NODE]["metadata"].get("annotations", {})


def test_unhealthy_devices_are_annotated_on_the_node_with_a_single_key_patch(
    kubelet: FakeKubelet, start_plugin: StartPlugin, api: FakeApi, short_dir: str
) -> None:
    api.add_node(NODE)
    _, health, annotations = with_health_file(start_plugin, api, short_dir, "inf1.6xlarge")
    with open(health, "w") as f:
        f.write("3\n1\n")
    wait_until(lambda: annotations().get(UNHEALTHY_DEVICES) == "1,3", 5, "annotation 1,3")
    node_patches = [b for p, _, b in api.patches if p == f"/api/v1/nodes/{NODE}"]
    assert node_patches and all(list(b) == ["metadata"] for b in node_patches)
    assert all(list(b["metadata"]["annotations"]) == [UNHEALTHY_DEVICES] for b in node_patches)


def test_all_devices_healthy_leaves_no_annotation_on_the_node(
    kubelet: FakeKubelet, start_plugin: StartPlugin, api: FakeApi, short_dir: str
) -> None:
    api.add_node(NODE, annotations={UNHEALTHY_DEVICES: "2", "other": "kept"})
    _, health, annotations = with_health_file(start_plugin, api, short_dir, "inf1.6xlarge")
    wait_until(lambda: UNHEALTHY_DEVICES not in annotations(), 5, "stale annotation cleared")
    with open(health, "w") as f:
        f.write("1\n")
    wait_until(lambda: annotations().get(UNHEALTHY_DEVICES) == "1", 5, "annotation 1")
    os.unlink(health)
    wait_until(lambda: UNHEALTHY_DEVICES not in annotations(), 5, "annotation removed")
    assert annotations()["other"] == "kept"


def test_the_unhealthy_devices_annotation_outlives_a_plugin_restart(
    kubelet: FakeKubelet, start_plugin: StartPlugin, api: FakeApi, short_dir: str
) -> None:
    # Failed on main before: stopping the plugin removed it, so the extender forgot the
    # unhealthy device while the plugin restarted.
    api.add_node(NODE)
    plugin, health, annotations = with_health_file(start_plugin, api, short_dir, "inf2.xlarge")
    with open(health, "w") as f:
        f.write("0\n")
    wait_until(lambda: UNHEALTHY_DEVICES in annotations(), 5, "annotation written")
    plugin.stop()
    assert annotations()[UNHEALTHY_DEVICES] == "0"


# --- GetPreferredAllocation ---
def test_preferred_allocation_on_trn1_32xlarge_is_an_aligned_block(
    kubelet: FakeKubelet, start_plugin: StartPlugin
) -> None:
    start_plugin(fake_instance_type="trn1.32xlarge")
    stub = kubelet.stub(NEURON)
    # Devices 0 and 5 taken: the only free aligned block of 4 left is 8-11 or 12-15.
    available = [str(i) for i in range(16) if i not in (0, 5)]
    chosen = preferred(stub, available, 4)
    assert chosen in (["8", "9", "10", "11"], ["12", "13", "14", "15"])


def test_preferred_allocation_on_inf2_is_ring_contiguous_and_packs_cores(
    kubelet: FakeKubelet, start_plugin: StartPlugin
) -> None:
    start_plugin(fake_instance_type="inf2.48xlarge")
    assert preferred(kubelet.stub(NEURON), ["0", "2", "3", "4", "7"], 3) == ["2", "3", "4"]
    # Two cores fit on one device: never split across devices when a whole one is free.
    cores = [str(i) for i in (1, 2, 3, 4, 5)]
    assert preferred(kubelet.stub(NEURONCORE), cores, 2) in (["2", "3"], ["4", "5"])


def test_preferred_allocation_honours_must_include(
    kubelet: FakeKubelet, start_plugin: StartPlugin
) -> None:
    start_plugin(fake_instance_type="inf1.6xlarge")
    chosen = preferred(kubelet.stub(NEURONCORE), ids(16), 3, must=["9"])
    assert "9" in chosen and len(chosen) == 3
    nums = sorted(int(c) for c in chosen)
    assert nums == list(range(nums[0], nums[0] + 3))


def test_preferred_allocation_rejects_unknown_ids(
    kubelet: FakeKubelet, start_plugin: StartPlugin
) -> None:
    start_plugin(fake_instance_type="inf1.xlarge")
    with pytest.raises(grpc.RpcError) as err:
        preferred(kubelet.stub(NEURONCORE), ["0", "nc-7"], 1)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "nc-7" in (err.value.details() or "")


# --- Allocate, standalone ---
def test_standalone_allocate_gives_visible_cores_and_no_device_nodes_in_fake_mode(
    kubelet: FakeKubelet, start_plugin: StartPlugin
) -> None:
    start_plugin(fake_instance_type="inf2.24xlarge")
    resp = allocate(kubelet.stub(NEURONCORE), ["3", "2"])
    c = resp.container_responses[0]
    assert dict(c.envs) == {"NEURON_RT_VISIBLE_CORES": "2,3"}
    assert list(c.devices) == []


def test_whole_devices_give_every_core_of_them(
    kubelet: FakeKubelet, start_plugin: StartPlugin
) -> None:
    start_plugin(fake_instance_type="inf1.6xlarge")
    resp = allocate(kubelet.stub(NEURON), ["1", "2"])
    cores = resp.container_responses[0].envs["NEURON_RT_VISIBLE_CORES"]
    assert cores == ",".join(str(i) for i in range(4, 12))


def test_allocate_rejects_unknown_device_ids_by_name(
    kubelet: FakeKubelet, start_plugin: StartPlugin
) -> None:
    start_plugin(fake_instance_type="inf2.xlarge")
    with pytest.raises(grpc.RpcError) as err:
        allocate(kubelet.stub(NEURONCORE), ["1", "99"])
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "'99'" in (err.value.details() or "")


# --- no core twice, across the two resources ---
def test_cores_of_a_device_handed_out_whole_are_refused_to_neuroncore(
    kubelet: FakeKubelet, start_plugin: StartPlugin
) -> None:
    plugin = start_plugin(fake_instance_type="inf2.24xlarge")
    allocate(kubelet.stub(NEURON), ["1"])
    with pytest.raises(grpc.RpcError) as err:
        allocate(kubelet.stub(NEURONCORE), ["2", "3"])
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    details = err.value.details() or ""
    assert "NeuronCores 2,3 are held" in details and "aws.amazon.com/neuron 1" in details
    assert (
        metric(
            plugin,
            "neuron_device_plugin_allocation_refusals_total",
            resource=NEURONCORE,
            reason="in_use",
        )
        == 1
    )


def test_device_with_a_core_handed_out_is_refused_whole(
    kubelet: FakeKubelet, start_plugin: StartPlugin
) -> None:
    start_plugin(fake_instance_type="inf2.24xlarge")
    allocate(kubelet.stub(NEURONCORE), ["5"])
    with pytest.raises(grpc.RpcError) as err:
        allocate(kubelet.stub(NEURON), ["2", "3"])
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "NeuronCores 5 are held" in (err.value.details() or "")


def test_ids_held_through_the_other_resource_are_withheld_when_asked_to(
    kubelet: FakeKubelet, start_plugin: StartPlugin
) -> None:
    start_plugin(fake_instance_type="inf2.24xlarge", withhold_in_use=True)
    wait_until(lambda: kubelet.health(NEURONCORE), 5, "stream")
    allocate(kubelet.stub(NEURON), ["0"])
    allocate(kubelet.stub(NEURONCORE), ["6"])
    wait_until(lambda: kubelet.unhealthy(NEURONCORE) == {"0", "1"}, 5, "cores 0,1 withheld")
    wait_until(lambda: kubelet.unhealthy(NEURON) == {"3"}, 5, "device 3 withheld")


def test_nothing_is_withheld_beside_the_extender(
    kubelet: FakeKubelet, start_plugin: StartPlugin
) -> None:
    plugin = start_plugin(fake_instance_type="inf2.24xlarge", withhold_in_use=False)
    allocate(kubelet.stub(NEURON), ["0"])
    assert plugin.state is not None
    assert plugin.state.ledger.held() == mask([0, 1])
    for resource in (Resource.NEURON, Resource.NEURONCORE):
        assert all(ok for _, ok in plugin.state.view(resource)[1])


def test_same_resource_ids_handed_out_again_mean_the_first_holder_is_gone(
    kubelet: FakeKubelet, start_plugin: StartPlugin
) -> None:
    start_plugin(fake_instance_type="inf2.24xlarge")
    allocate(kubelet.stub(NEURONCORE), ["0", "1"])
    # The kubelet never hands out IDs of a resource it still has assigned.
    allocate(kubelet.stub(NEURONCORE), ["0", "1"])
    with pytest.raises(grpc.RpcError):
        allocate(kubelet.stub(NEURON), ["0"])


def test_pod_resources_usage_is_refused_and_freed_when_the_pod_goes(
    kubelet: FakeKubelet, start_plugin: StartPlugin, short_dir: str
) -> None:
    sock = os.path.join(short_dir, "pr.sock")
    pr = FakePodResources(sock).start()
    try:
        pr.assigned[("default", "old", "main")] = {NEURON: ["2"]}
        start_plugin(fake_instance_type="inf2.24xlarge", pod_resources_socket=sock)
        wait_until(lambda: kubelet.unhealthy(NEURONCORE) == {"4", "5"}, 5, "cores withheld")
        with pytest.raises(grpc.RpcError) as err:
            allocate(kubelet.stub(NEURONCORE), ["4"])
        assert "default/old/main" in (err.value.details() or "")
        pr.assigned.clear()
        # Refusal looks again at the kubelet before refusing: the pod is gone now.
        allocate(kubelet.stub(NEURONCORE), ["4"])
    finally:
        pr.stop()


def test_pod_deleted_from_the_api_frees_its_ids_before_the_next_pod_resources_poll(
    kubelet: FakeKubelet,
    start_plugin: StartPlugin,
    api: FakeApi,
    with_api: dict[str, str],
    short_dir: str,
) -> None:
    sock = os.path.join(short_dir, "pr.sock")
    pr = FakePodResources(sock).start()
    try:
        pr.assigned[("default", "old", "main")] = {NEURON: ["2"]}
        api.put_pod(make_pod("old", NODE, [("main", NEURON, 1)], {}))
        start_plugin(
            fake_instance_type="inf2.24xlarge",
            pod_resources_socket=sock,
            pod_resources_interval=600.0,
            pod_resources_soon=600.0,
            **with_api,
        )
        wait_until(lambda: kubelet.unhealthy(NEURONCORE) == {"4", "5"}, 5, "cores withheld")
        api.delete_pod("default", "old")  # the kubelet still lists it until the next poll
        wait_until(lambda: not kubelet.unhealthy(NEURONCORE), 5, "cores offered again")
    finally:
        pr.stop()


# --- kubelet restarts and stop ---
def test_kubelet_restart_reregisters_and_keeps_what_is_in_use(
    kubelet: FakeKubelet, start_plugin: StartPlugin, short_dir: str
) -> None:
    plugin = start_plugin(fake_instance_type="inf2.24xlarge")
    allocate(kubelet.stub(NEURON), ["0"])
    kubelet.restart()
    wait_until(
        lambda: len(kubelet.registered(NEURON)) == 2 and len(kubelet.registered(NEURONCORE)) == 2,
        5,
        "registered again",
    )
    assert os.path.exists(os.path.join(short_dir, kubelet.registered(NEURON)[-1].endpoint))
    wait_until(lambda: kubelet.unhealthy(NEURONCORE) == {"0", "1"}, 5, "stream after restart")
    with pytest.raises(grpc.RpcError):
        allocate(kubelet.stub(NEURONCORE), ["1"])
    assert metric(plugin, "neuron_device_plugin_registrations_total", resource=NEURON) == 2


def test_stop_removes_the_sockets(
    kubelet: FakeKubelet, start_plugin: StartPlugin, short_dir: str
) -> None:
    plugin = start_plugin(fake_instance_type="inf1.xlarge")
    plugin.stop()
    assert sorted(os.listdir(short_dir)) == [os.path.basename(kubelet.socket)]


@pytest.fixture
def with_api(api: FakeApi, short_dir: str) -> dict[str, str]:
    api.add_node(NODE, {"node.kubernetes.io/instance-type": "inf2.24xlarge"})
    return {"kubeconfig": api.kubeconfig(os.path.join(short_dir, "kubeconfig")), "node_name": NODE}


def test_fake_instance_type_label_imitates_the_node(
    kubelet: FakeKubelet, start_plugin: StartPlugin, api: FakeApi, short_dir: str
) -> None:
    api.add_node(NODE, {"example.com/neuron-type": "trn1.32xlarge"})
    start_plugin(
        fake_instance_type_label="example.com/neuron-type",
        node_name=NODE,
        kubeconfig=api.kubeconfig(os.path.join(short_dir, "kubeconfig")),
    )
    wait_until(lambda: len(kubelet.health(NEURONCORE)) == 32, 5, "32 cores")
    assert len(kubelet.health(NEURON)) == 16


# --- HTTP ---
def test_http_reports_health_readiness_and_metrics(
    kubelet: FakeKubelet, start_plugin: StartPlugin
) -> None:
    plugin = start_plugin(fake_instance_type="inf1.6xlarge", http_port=0)
    assert plugin.http is not None
    base = f"http://127.0.0.1:{plugin.http.port}"
    assert urllib.request.urlopen(f"{base}/healthz", timeout=5).status == 200
    assert urllib.request.urlopen(f"{base}/readyz", timeout=5).status == 200
    allocate(kubelet.stub(NEURON), ["0"])
    text = urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode()
    assert f'neuron_device_plugin_registered{{resource="{NEURON}"}} 1.0' in text
    assert f'neuron_device_plugin_devices{{health="healthy",resource="{NEURONCORE}"}} 16.0' in text
    assert f'neuron_device_plugin_allocations_total{{resource="{NEURON}"}} 1.0' in text


def test_readyz_is_503_until_registered(short_dir: str, start_plugin: StartPlugin) -> None:
    plugin = start_plugin(fake_instance_type="inf1.xlarge", http_port=0, wait=False)
    assert plugin.http is not None
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"http://127.0.0.1:{plugin.http.port}/readyz", timeout=5)
    assert err.value.code == 503


# --- real mode ---
def test_real_mode_passes_the_device_nodes_the_cores_sit_on(
    kubelet: FakeKubelet, start_plugin: StartPlugin, short_dir: str
) -> None:
    dev = os.path.join(short_dir, "dev")
    os.makedirs(dev)
    for d in range(4):
        os.symlink("/dev/null", os.path.join(dev, f"neuron{d}"))  # a character device
        os.makedirs(
            os.path.join(short_dir, "sys/class/neuron_device", f"neuron{d}", "neuron_core0")
        )
        os.makedirs(
            os.path.join(short_dir, "sys/class/neuron_device", f"neuron{d}", "neuron_core1")
        )
    start_plugin(dev_root=dev, sysfs_root=os.path.join(short_dir, "sys"))
    c = allocate(kubelet.stub(NEURONCORE), ["3", "4"]).container_responses[0]
    assert c.envs["NEURON_RT_VISIBLE_CORES"] == "3,4"
    assert [(d.host_path, d.container_path, d.permissions) for d in c.devices] == [
        ("/dev/neuron1", "/dev/neuron1", "rw"),
        ("/dev/neuron2", "/dev/neuron2", "rw"),
    ]
    os.unlink(os.path.join(dev, "neuron3"))
    # Devices 1 and 2 are withheld (their cores are held); 3 is gone.
    wait_until(lambda: kubelet.unhealthy(NEURON) == {"1", "2", "3"}, 5, "device 3 unhealthy")
    wait_until(lambda: kubelet.unhealthy(NEURONCORE) == {"6", "7"}, 5, "its cores unhealthy")
