"""Fixtures of the extender tests: a fake API server on 127.0.0.1 and the real extender HTTP
server against it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from extender_fakeapi import FakeApiServer, FakeCluster
from extender_helpers import RunningExtender
from neuron_k8s.kube import KubeClient


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    server = FakeApiServer().start()
    yield server
    server.stop()


@pytest.fixture
def cluster(api: FakeApiServer) -> FakeCluster:
    return api.cluster


@pytest.fixture
def start_extender(api: FakeApiServer) -> Iterator[Callable[..., RunningExtender]]:
    """Start the real extender (watches and HTTP server on 127.0.0.1) against the fake API,
    wait until it is ready; call again for a second instance (a restart)."""
    from neuron_k8s.extender.server import ExtenderServer
    from neuron_k8s.extender.verbs import Extender

    running: list[RunningExtender] = []

    def start(**options: Any) -> RunningExtender:
        extender = Extender(KubeClient.for_url(api.url), **options)
        server = ExtenderServer(extender, "127.0.0.1", 0)
        server.poll_interval = 0.02
        extender.start()
        server.start()
        r = RunningExtender(extender, server)
        running.append(r)
        assert extender.wait_ready(5), "extender did not list nodes and pods"
        return r

    yield start
    for r in running:
        r.stop()


@pytest.fixture
def extender(start_extender: Callable[[], RunningExtender]) -> RunningExtender:
    return start_extender()
