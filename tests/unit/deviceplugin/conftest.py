from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from dp_harness import (
    NEURON,
    NEURONCORE,
    Admission,
    FakeApi,
    FakeKubelet,
    FakePodResources,
    wait_until,
)
from neuron_k8s.deviceplugin.plugin import Config, Plugin
from planned_pods import NODE, TYPE


@pytest.fixture
def kubelet(short_dir: str) -> Iterator[FakeKubelet]:
    k = FakeKubelet(short_dir).start()
    yield k
    k.stop()


@pytest.fixture
def api() -> Iterator[FakeApi]:
    a = FakeApi().start()
    yield a
    a.stop()


@pytest.fixture
def start_plugin(short_dir: str) -> Iterator[Callable[..., Plugin]]:
    """Start a plugin in-process on the kubelet's directory (fast polling); waits until both
    resources registered when a kubelet is there."""
    started: list[Plugin] = []

    def start(wait: bool = True, **overrides: Any) -> Plugin:
        values: dict[str, Any] = {
            "device_plugin_dir": short_dir,
            "http_port": -1,
            "pod_resources_socket": "",
            "health_interval": 0.05,
            "registration_interval": 0.05,
            "pod_resources_interval": 0.2,
        }
        values.update(overrides)
        plugin = Plugin(Config(**values))
        started.append(plugin)
        plugin.start()
        if wait:
            wait_until(
                lambda: plugin.manager is not None and plugin.manager.ready, 10, "registration"
            )
        return plugin

    yield start
    for p in started:
        p.stop()


@pytest.fixture
def pr(short_dir: str) -> Iterator[FakePodResources]:
    server = FakePodResources(os.path.join(short_dir, "pr.sock")).start()
    yield server
    server.stop()


@pytest.fixture
def node(
    kubelet: FakeKubelet,
    api: FakeApi,
    pr: FakePodResources,
    start_plugin: Callable[..., Plugin],
    short_dir: str,
) -> Callable[..., tuple[Plugin, Admission]]:
    """A plugin with the API and PodResources (withholding off, as the chart runs it beside
    the extender), once its pod watch has listed the node's pods; and the kubelet's admission."""
    api.add_node(NODE, {"node.kubernetes.io/instance-type": TYPE})

    def start(**overrides: Any) -> tuple[Plugin, Admission]:
        values: dict[str, Any] = {
            "fake_instance_type": TYPE,
            "kubeconfig": api.kubeconfig(os.path.join(short_dir, "kubeconfig")),
            "node_name": NODE,
            "pod_resources_socket": pr.socket_path,
            "withhold_in_use": False,
            "pod_resources_soon": 0.05,
        }
        values.update(overrides)
        plugin = start_plugin(**values)
        wait_until(lambda: plugin.pods is not None and plugin.pods.synced, 5, "pods listed")
        wait_until(lambda: kubelet.health(NEURONCORE) and kubelet.health(NEURON), 5, "streams")
        return plugin, Admission.over_grpc(kubelet, pr)

    return start
