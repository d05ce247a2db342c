"""The driver lists the kubelet's PodResources at start and after each NodePrepareResources, so
that a kubelet that ran a device plugin forgets the allocations of pods that are gone before it
starts a claim's container (dra/devicemanagersweep.py). Seen on kind 1.37: without a List, a pod
asking for aws.amazon.com/neuron through DRA failed with "endpoint not found in cache for a
registered resource" five minutes after the device plugin left; one List and it started."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from dra_harness import NODE, Dirs, FakeApi, FakeKubelet, make_claim, prepare, wait_until
from driver_checks import StartDriver
from neuron_k8s.deviceplugin.api import pr_grpc, pr_pb, target
from neuron_k8s.dra.devicemanagersweep import DeviceManagerSweeper


class Lister(pr_grpc.PodResourcesListerServicer):
    """The kubelet's PodResources List, counting its calls."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.calls = 0
        self._lock = threading.Lock()
        self._server = grpc.server(ThreadPoolExecutor(max_workers=2))
        pr_grpc.add_PodResourcesListerServicer_to_server(self, self._server)
        self._server.add_insecure_port(target(path))
        self._server.start()

    def List(self, request: object, context: grpc.ServicerContext) -> object:
        with self._lock:
            self.calls += 1
        return pr_pb.ListPodResourcesResponse()

    def stop(self) -> None:
        self._server.stop(grace=0).wait(2)


@pytest.fixture
def lister(short_dir: str) -> Iterator[Lister]:
    one = Lister(os.path.join(short_dir, "pr.sock"))
    yield one
    one.stop()


def test_the_driver_lists_pod_resources_once_it_starts(
    start_driver: StartDriver, lister: Lister
) -> None:
    start_driver(pod_resources_socket=lister.path)
    wait_until(lambda: lister.calls >= 1, 5, "a List at start")


def test_each_prepare_is_followed_by_a_list(
    kubelet: FakeKubelet, start_driver: StartDriver, api: FakeApi, lister: Lister
) -> None:
    start_driver(pod_resources_socket=lister.path)
    wait_until(lambda: lister.calls >= 1, 5, "a List at start")
    for i in range(2):
        before = lister.calls
        claim = api.add_claim(make_claim(f"c{i}", {"gpus": [i]}, NODE))
        prepare(kubelet.stub(), claim)
        # Far sooner than the 30 s period: it is the prepare that asked.
        wait_until(lambda b=before: lister.calls > b, 5, f"a List after prepare {i}")


def test_without_a_socket_configured_nothing_is_listed(
    kubelet: FakeKubelet, start_driver: StartDriver, api: FakeApi, lister: Lister
) -> None:
    driver = start_driver(pod_resources_socket="")
    prepare(kubelet.stub(), api.add_claim(make_claim("c", {"gpus": [0]}, NODE)))
    assert driver.sweeper is None and lister.calls == 0


def test_an_unreachable_kubelet_is_logged_once_and_prepare_still_answers(
    kubelet: FakeKubelet,
    start_driver: StartDriver,
    api: FakeApi,
    dirs: Dirs,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    driver = start_driver(pod_resources_socket=os.path.join(dirs.plugins, "missing.sock"))
    for i in range(3):
        resp = prepare(kubelet.stub(), api.add_claim(make_claim(f"c{i}", {"gpus": [i]}, NODE)))
        assert not resp.claims[f"uid-c{i}"].error
    assert driver.sweeper is not None and driver.sweeper.sweeps == 0
    unavailable = [r for r in caplog.records if "pod resources api unavailable" in r.getMessage()]
    assert len(unavailable) == 1


def test_nudge_never_blocks_and_stop_ends_the_thread(lister: Lister) -> None:
    sweeper = DeviceManagerSweeper(lister.path, interval=3600)
    sweeper.start()
    wait_until(lambda: sweeper.sweeps == 1, 5, "the first List")
    for _ in range(100):
        sweeper.nudge()
    wait_until(lambda: sweeper.sweeps >= 2, 5, "a List after the nudges")
    sweeper.stop()
    assert sweeper._thread is not None and not sweeper._thread.is_alive()
