from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from dp_harness import FakeApi, FakeKubelet, wait_until
from neuron_k8s.deviceplugin.plugin import Config, Plugin


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
