"""The device plugin in real mode over a planted driver footprint, as the kubelet sees it: a
node without the driver advertises nothing and says so on the Node; a missing device keeps
the node's shape and is unhealthy until its device node appears."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from dp_harness import NEURON, NEURONCORE, FakeApi, FakeKubelet, wait_until
from neuron_k8s.deviceplugin.plugin import Plugin
from neuron_k8s.nodeevents import DRIVER_NOT_FOUND

StartPlugin = Callable[..., Plugin]
NODE = "node-a"


def plant(root: Path, devices: range, cores: int) -> None:
    """The driver's device nodes (links to /dev/null: character devices) and sysfs entries."""
    for d in devices:
        (root / "dev" / f"neuron{d}").symlink_to("/dev/null")
        base = root / "sys/devices/virtual/neuron_device" / f"neuron{d}"
        base.mkdir(parents=True)
        (base / "core_count").write_text(f"{cores}\n")


def roots(short_dir: str) -> tuple[Path, dict[str, str]]:
    root = Path(short_dir) / "host"
    (root / "dev").mkdir(parents=True)
    (root / "sys").mkdir()
    return root, {"dev_root": str(root / "dev"), "sysfs_root": str(root / "sys")}


def streamed(kubelet: FakeKubelet) -> bool:
    return bool(kubelet.updates.get(NEURON)) and bool(kubelet.updates.get(NEURONCORE))


def test_a_neuron_node_without_the_driver_advertises_no_devices_and_posts_one_warning_event(
    kubelet: FakeKubelet, api: FakeApi, start_plugin: StartPlugin, short_dir: str
) -> None:
    api.add_node(NODE, {"node.kubernetes.io/instance-type": "inf2.24xlarge"})
    _, paths = roots(short_dir)
    kubeconfig = api.kubeconfig(os.path.join(short_dir, "kubeconfig"))
    plugin = start_plugin(kubeconfig=kubeconfig, node_name=NODE, **paths)
    wait_until(lambda: streamed(kubelet), 5, "both streams answered")
    assert kubelet.health(NEURON) == {} and kubelet.health(NEURONCORE) == {}
    wait_until(lambda: len(api.events) == 1, 5, "the Event on the Node")
    (event,) = api.events
    assert (event["type"], event["reason"]) == ("Warning", DRIVER_NOT_FOUND)
    assert event["involvedObject"] == {
        "apiVersion": "v1",
        "kind": "Node",
        "name": NODE,
        "uid": NODE,
    }
    assert plugin.driver_warned


def test_a_driver_that_loads_after_start_makes_the_node_advertise_its_instance_type(
    kubelet: FakeKubelet, api: FakeApi, start_plugin: StartPlugin, short_dir: str
) -> None:
    api.add_node(NODE, {"node.kubernetes.io/instance-type": "inf2.24xlarge"})
    root, paths = roots(short_dir)
    kubeconfig = api.kubeconfig(os.path.join(short_dir, "kubeconfig"))
    start_plugin(kubeconfig=kubeconfig, node_name=NODE, **paths)
    wait_until(lambda: len(api.events) == 1, 5, "the Event on the Node")
    plant(root, range(6), 2)
    want = {str(i): "Healthy" for i in range(6)}
    wait_until(lambda: kubelet.health(NEURON) == want, 5, "six healthy devices")
    assert kubelet.health(NEURONCORE) == {str(i): "Healthy" for i in range(12)}
    assert len(api.events) == 1


def test_trn1_32xlarge_without_dev_neuron15_advertises_16_devices_with_device_15_unhealthy(
    kubelet: FakeKubelet, start_plugin: StartPlugin, short_dir: str
) -> None:
    root, paths = roots(short_dir)
    plant(root, range(15), 2)
    dmi = root / "sys/devices/virtual/dmi/id"
    dmi.mkdir(parents=True)
    (dmi / "product_name").write_text("trn1.32xlarge\n")
    plugin = start_plugin(**paths)
    wait_until(lambda: kubelet.unhealthy(NEURONCORE) == {"30", "31"}, 5, "its cores unhealthy")
    assert len(kubelet.health(NEURON)) == 16 and kubelet.unhealthy(NEURON) == {"15"}
    assert plugin.state is not None and plugin.state.shape.rule.value == "aligned"
    (root / "dev/neuron15").symlink_to("/dev/null")
    wait_until(lambda: not kubelet.unhealthy(NEURON), 5, "device 15 healthy once it appears")
    assert len(kubelet.health(NEURON)) == 16
