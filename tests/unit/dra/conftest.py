from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from dra_harness import (
    NODE,
    NODE_TYPE,
    Dirs,
    FakeApi,
    FakeKubelet,
    driver_config,
    ready,
    wait_until,
)
from neuron_k8s.dra.driver import Driver
from neuron_k8s.kube import KubeClient


@pytest.fixture
def dirs(short_dir: str) -> Dirs:
    return Dirs.under(short_dir)


@pytest.fixture
def api() -> Iterator[FakeApi]:
    a = FakeApi().start()
    a.add_node(NODE, NODE_TYPE)
    yield a
    a.stop()


@pytest.fixture
def kubelet(dirs: Dirs) -> Iterator[FakeKubelet]:
    k = FakeKubelet(dirs.registry).start()
    yield k
    k.stop()


@pytest.fixture
def start_driver(api: FakeApi, kubelet: FakeKubelet, dirs: Dirs) -> Iterator[Callable[..., Driver]]:
    """Start a driver in-process against the stand-ins; by default waits until the kubelet
    registered it, its slices are published and its claim watch listed."""
    started: list[Driver] = []

    def start(wait: bool = True, **overrides: Any) -> Driver:
        driver = Driver(driver_config(dirs, **overrides), KubeClient.for_url(api.url))
        started.append(driver)
        driver.start()
        if wait:
            wait_until(lambda: ready(driver), 10, "the driver registered, published, synced")
        return driver

    yield start
    for d in started:
        d.stop()
