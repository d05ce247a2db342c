"""The kubelet's DRAResourceHealth stream (KEP-4680) from the DRA driver in-process: advertised
in the registration the way the 1.37 kubelet checks it, served on the DRA socket, the full list
on connect and again on every change of the health file or of the prepared claims."""

from __future__ import annotations

import os
import time

import grpc
import pytest
from dra_harness import (
    NODE,
    Dirs,
    FakeApi,
    FakeKubelet,
    HealthWatch,
    answer,
    make_claim,
    prepare,
    result,
    wait_until,
)
from driver_checks import StartDriver
from neuron_k8s.dra.health import MAX_STREAMS, TIMEOUT

WHOLE = [f"neurondevice{i}" for i in range(16)]  # trn1.32xlarge


def set_unhealthy(dirs: Dirs, text: str) -> None:
    with open(dirs.health, "w") as f:
        f.write(text)


def health(watch: HealthWatch, device: str) -> str:
    return watch.latest().get(device, ("", ""))[0]


def test_the_registration_lists_both_health_services_after_the_dra_ones(
    kubelet: FakeKubelet, start_driver: StartDriver
) -> None:
    start_driver()
    (reg,) = kubelet.registered()
    assert list(reg.info.supported_versions) == [
        "v1.DRAPlugin",
        "v1beta1.DRAPlugin",
        "v1.DRAResourceHealth",
        "v1alpha1.DRAResourceHealth",
    ]
    assert kubelet.health_service() == "v1.DRAResourceHealth"


@pytest.mark.parametrize("service", ["v1.DRAResourceHealth", "v1alpha1.DRAResourceHealth"])
def test_a_stream_gets_every_device_of_the_pool_healthy_on_connect(
    kubelet: FakeKubelet, start_driver: StartDriver, service: str
) -> None:
    start_driver()
    watch = kubelet.watch_health(service)
    wait_until(lambda: watch.received(), 10, "the first list")
    (first,) = watch.received()[:1]
    assert [d.device.device_name for d in first.devices] == WHOLE
    assert {d.device.pool_name for d in first.devices} == {NODE}
    assert {watch.pb.HealthStatus.Name(d.health) for d in first.devices} == {"HEALTHY"}
    assert {d.health_check_timeout_seconds for d in first.devices} == {TIMEOUT}
    assert all(abs(d.last_updated_time - time.time()) < 60 for d in first.devices)


def test_a_device_in_the_health_file_turns_unhealthy_in_the_stream_and_back(
    kubelet: FakeKubelet, start_driver: StartDriver, dirs: Dirs
) -> None:
    start_driver()
    watch = kubelet.watch_health("v1.DRAResourceHealth")
    wait_until(lambda: health(watch, "neurondevice3") == "HEALTHY", 10, "the first list")
    set_unhealthy(dirs, "3\n")
    wait_until(lambda: health(watch, "neurondevice3") == "UNHEALTHY", 10, "device 3 unhealthy")
    latest = watch.latest()
    assert sorted(latest) == sorted(WHOLE)
    assert [n for n, (h, _) in latest.items() if h != "HEALTHY"] == ["neurondevice3"]
    os.unlink(dirs.health)
    wait_until(lambda: health(watch, "neurondevice3") == "HEALTHY", 10, "device 3 healthy again")


def test_a_prepared_core_set_joins_the_list_and_turns_unhealthy_with_its_device(
    kubelet: FakeKubelet, start_driver: StartDriver, api: FakeApi, dirs: Dirs
) -> None:
    start_driver()
    watch = kubelet.watch_health("v1.DRAResourceHealth")
    wait_until(lambda: watch.received(), 10, "the first list")
    claim = api.add_claim(make_claim("c1", results=[result("cores", "neuroncores5-6", NODE)]))
    answer(prepare(kubelet.stub(), claim), claim)
    wait_until(lambda: health(watch, "neuroncores5-6") == "HEALTHY", 10, "the core set listed")
    set_unhealthy(dirs, "3\n")  # cores 6 and 7
    wait_until(lambda: health(watch, "neuroncores5-6") == "UNHEALTHY", 10, "the set unhealthy")
    assert "neurondevice3" in watch.latest()["neuroncores5-6"][1]


def test_a_quiet_stream_is_sent_the_list_again_before_the_kubelet_times_it_out(
    kubelet: FakeKubelet, start_driver: StartDriver
) -> None:
    start_driver(health_heartbeat=0.1)
    watch = kubelet.watch_health("v1.DRAResourceHealth")
    wait_until(lambda: len(watch.received()) >= 3, 10, "the list sent again")
    assert {len(m.devices) for m in watch.received()} == {16}


def test_without_a_health_source_the_stream_says_unknown(
    kubelet: FakeKubelet, start_driver: StartDriver
) -> None:
    start_driver(fake_health_file=None)
    watch = kubelet.watch_health("v1.DRAResourceHealth")
    wait_until(lambda: watch.received(), 10, "the first list")
    assert {h for h, _ in watch.latest().values()} == {"UNKNOWN"}


def test_streams_beyond_the_bound_are_refused_and_prepare_still_answers(
    kubelet: FakeKubelet, start_driver: StartDriver, api: FakeApi
) -> None:
    start_driver()
    open_ = [kubelet.watch_health("v1.DRAResourceHealth") for _ in range(MAX_STREAMS)]
    wait_until(lambda: all(w.received() for w in open_), 10, "the streams open")
    extra = kubelet.watch_health("v1.DRAResourceHealth")
    assert extra.done.wait(10)
    assert extra.ended is not None
    assert extra.ended.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    claim = api.add_claim(make_claim("c1", {"gpus": [0]}, NODE))
    assert [d for _, _, d, _ in answer(prepare(kubelet.stub(), claim), claim)] == [WHOLE[0]]


def test_a_stream_the_kubelet_cancels_frees_its_place(
    kubelet: FakeKubelet, start_driver: StartDriver
) -> None:
    start_driver()
    open_ = [kubelet.watch_health("v1.DRAResourceHealth") for _ in range(MAX_STREAMS)]
    wait_until(lambda: all(w.received() for w in open_), 10, "the streams open")
    open_[0].cancel()

    def another_opens() -> bool:
        # The driver hears of the cancel a moment later: until then a new one is refused.
        again = kubelet.watch_health("v1.DRAResourceHealth")
        wait_until(lambda: again.received() or again.done.is_set(), 10, "an answer")
        return bool(again.received())

    wait_until(another_opens, 10, "a new stream in the cancelled one's place")


def test_stopping_the_driver_ends_its_streams(
    kubelet: FakeKubelet, start_driver: StartDriver
) -> None:
    driver = start_driver()
    watch = kubelet.watch_health("v1.DRAResourceHealth")
    wait_until(lambda: watch.received(), 10, "the first list")
    driver.stop()
    assert watch.done.wait(10)
