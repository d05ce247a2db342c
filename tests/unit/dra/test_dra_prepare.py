"""NodePrepareResources and NodeUnprepareResources of the DRA driver in-process, over both
versions of the service, against the kubelet and API stand-ins: the answer, the CDI spec, the
checkpoint, repeats and concurrency, and a claim's errors."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import pytest
from dra_harness import (
    CLAIMS,
    NODE,
    Dirs,
    FakeApi,
    FakeKubelet,
    answer,
    make_claim,
    neuron_config,
    prepare,
    unprepare,
    wait_until,
)
from driver_checks import StartDriver, cdi_env, cdi_file, metric
from neuron_k8s.dra.checkpoint import Checkpoint


# --- NodePrepareResources ---
@pytest.mark.parametrize("version", ["v1", "v1beta1"])
def test_prepare_answers_the_devices_with_pool_and_cdi_id_and_writes_the_cdi_spec(
    kubelet: FakeKubelet, start_driver: StartDriver, api: FakeApi, dirs: Dirs, version: str
) -> None:
    start_driver()
    claim = api.add_claim(make_claim("c1", {"gpus": [4, 5, 6, 7]}, NODE))
    resp = prepare(kubelet.stub(version), claim, version=version)
    cdi_id = "neuron.aws.com/claim=uid-c1-gpus"
    assert answer(resp, claim) == [
        ("gpus", NODE, "neurondevice4", [cdi_id]),
        ("gpus", NODE, "neurondevice5", []),
        ("gpus", NODE, "neurondevice6", []),
        ("gpus", NODE, "neurondevice7", []),
    ]
    assert cdi_env(dirs, claim) == {
        "uid-c1-gpus": ["NEURON_RT_VISIBLE_CORES=8,9,10,11,12,13,14,15"]
    }


def test_a_claim_for_four_devices_on_trn1_gets_one_aligned_block_of_cdi_edits(
    kubelet: FakeKubelet, start_driver: StartDriver, api: FakeApi, dirs: Dirs
) -> None:
    start_driver()
    claim = api.add_claim(make_claim("c1", {"gpus": [12, 13, 14, 15]}, NODE))
    answer(prepare(kubelet.stub(), claim), claim)
    assert cdi_env(dirs, claim) == {
        "uid-c1-gpus": ["NEURON_RT_VISIBLE_CORES=24,25,26,27,28,29,30,31"]
    }


def test_each_request_of_a_claim_gets_its_own_cdi_device_and_the_whole_claim_one_more_last(
    kubelet: FakeKubelet, start_driver: StartDriver, api: FakeApi, dirs: Dirs
) -> None:
    start_driver()
    claim = api.add_claim(make_claim("c1", {"train": [0], "eval": [1]}, NODE))
    devices = answer(prepare(kubelet.stub(), claim), claim)
    assert [(r, d, ids) for r, _, d, ids in devices] == [
        ("train", "neurondevice0", ["neuron.aws.com/claim=uid-c1-train"]),
        ("eval", "neurondevice1", ["neuron.aws.com/claim=uid-c1-eval"]),
        ("<claim>", "neurondevice0", ["neuron.aws.com/claim=uid-c1"]),
    ]
    assert cdi_env(dirs, claim) == {
        "uid-c1-train": ["NEURON_RT_VISIBLE_CORES=0,1"],
        "uid-c1-eval": ["NEURON_RT_VISIBLE_CORES=2,3"],
        "uid-c1": ["NEURON_RT_VISIBLE_CORES=0,1,2,3"],
    }


def test_a_trn2_claim_with_logical_core_size_1_sees_eight_cores_per_device(
    kubelet: FakeKubelet, start_driver: StartDriver, api: FakeApi, dirs: Dirs
) -> None:
    api.add_node("trn2-node", "trn2.48xlarge")
    start_driver(node_name="trn2-node")
    claim = api.add_claim(make_claim("c1", {"gpus": [1]}, "trn2-node", config=[neuron_config(1)]))
    answer(prepare(kubelet.stub(), claim), claim)
    assert cdi_env(dirs, claim) == {
        "uid-c1-gpus": [
            "NEURON_RT_VISIBLE_CORES=8,9,10,11,12,13,14,15",
            "NEURON_LOGICAL_NC_CONFIG=1",
        ]
    }


def test_preparing_a_claim_again_gives_the_same_answer(
    kubelet: FakeKubelet, start_driver: StartDriver, api: FakeApi
) -> None:
    start_driver()
    claim = api.add_claim(make_claim("c1", {"gpus": [0, 1, 2, 3]}, NODE))
    stub = kubelet.stub()
    first = prepare(stub, claim)
    assert prepare(stub, claim) == first
    assert prepare(kubelet.stub("v1beta1"), claim, version="v1beta1").SerializeToString() == (
        first.SerializeToString()
    )


def test_two_calls_preparing_one_claim_at_once_get_the_same_answer(
    kubelet: FakeKubelet, start_driver: StartDriver, api: FakeApi
) -> None:
    start_driver()
    claim = api.add_claim(make_claim("c1", {"gpus": [8, 9, 10, 11]}, NODE))
    stub = kubelet.stub()
    got: list[Any] = []
    calls = [threading.Thread(target=lambda: got.append(prepare(stub, claim))) for _ in range(4)]
    for t in calls:
        t.start()
    for t in calls:
        t.join(20)
    assert len(got) == 4
    assert all(answer(g, claim) == answer(got[0], claim) for g in got)


def test_prepare_reads_the_claim_from_the_watch_and_asks_the_api_nothing(
    kubelet: FakeKubelet, start_driver: StartDriver, api: FakeApi
) -> None:
    start_driver()
    claim = api.add_claim(make_claim("c1", {"gpus": [0]}, NODE))
    stub = kubelet.stub()
    mark = api.request_count()
    answer(prepare(stub, claim), claim)
    claim_calls = [
        r for r in api.requests_since(mark) if r[1].startswith(CLAIMS) and "watch=true" not in r[1]
    ]
    assert claim_calls == []


def test_an_unknown_claim_gets_an_error_and_the_other_claim_of_the_pod_its_devices(
    kubelet: FakeKubelet, start_driver: StartDriver, api: FakeApi, dirs: Dirs
) -> None:
    driver = start_driver()
    good = api.add_claim(make_claim("good", {"gpus": [0]}, NODE))
    unknown = make_claim("ghost", {"gpus": [1]}, NODE)
    resp = prepare(kubelet.stub(), unknown, good)
    error = resp.claims["uid-ghost"].error
    assert error.startswith("default/ghost: claim default/ghost (uid-ghost) is not allocated")
    assert not resp.claims["uid-ghost"].devices
    assert answer(resp, good) == [
        ("gpus", NODE, "neurondevice0", ["neuron.aws.com/claim=uid-good-gpus"])
    ]
    assert not os.path.exists(cdi_file(dirs, unknown))
    assert metric(driver, "neuron_dra_driver_prepares_total", outcome="error") == 1
    assert metric(driver, "neuron_dra_driver_prepares_total", outcome="ok") == 1


def test_a_claim_the_watch_has_not_seen_does_not_hold_up_another_pods_claim(
    kubelet: FakeKubelet, start_driver: StartDriver, api: FakeApi
) -> None:
    driver = start_driver(wait_for_claim=2)
    good = api.add_claim(make_claim("good", {"gpus": [0]}, NODE))
    waiting = threading.Event()
    wait = driver.claims.wait

    def noted_wait(*args: Any, **kwargs: Any) -> Any:
        waiting.set()
        return wait(*args, **kwargs)

    driver.claims.wait = noted_wait  # type: ignore[method-assign]
    stub = kubelet.stub()
    done: dict[str, float] = {}

    def ghost_pod() -> None:
        prepare(stub, make_claim("ghost"))
        done["ghost"] = time.monotonic()

    ghost = threading.Thread(target=ghost_pod)
    ghost.start()
    wait_until(waiting.is_set, 10, "the ghost claim's prepare waiting for the watch")
    answer(prepare(stub, good), good)
    done["good"] = time.monotonic()
    ghost.join(10)
    # The ghost's answer comes once its 2 s wait is over; the good claim's long before.
    assert done["ghost"] - done["good"] > 1.0


def test_an_unallocated_claim_gets_an_error(
    kubelet: FakeKubelet, start_driver: StartDriver, api: FakeApi
) -> None:
    start_driver()
    claim = api.add_claim(make_claim("c1", {"gpus": [0]}, NODE, allocated=False))
    resp = prepare(kubelet.stub(), claim)
    assert "is not allocated, or not seen by the driver's watch" in resp.claims["uid-c1"].error


def test_a_claim_allocated_while_prepare_waits_for_it_is_prepared(
    kubelet: FakeKubelet, start_driver: StartDriver, api: FakeApi
) -> None:
    start_driver(wait_for_claim=10)
    pending = api.add_claim(make_claim("c1", {"gpus": [2]}, NODE, allocated=False))
    stub = kubelet.stub()
    got: list[Any] = []
    call = threading.Thread(target=lambda: got.append(prepare(stub, pending)))
    call.start()
    api.modify_claim(make_claim("c1", {"gpus": [2]}, NODE))
    call.join(15)
    assert [d for _, _, d, _ in answer(got[0], pending)] == ["neurondevice2"]


def test_a_cached_claim_no_longer_reserved_is_stale_and_prepare_waits_for_its_new_allocation(
    kubelet: FakeKubelet, start_driver: StartDriver, api: FakeApi
) -> None:
    # The watch still shows the allocation of the claim's last pod, released; the kubelet asks
    # for the claim because it was allocated again, for the pod it starts.
    driver = start_driver(wait_for_claim=10)
    stale = api.add_claim(make_claim("c1", {"gpus": [2]}, NODE, reserved=False))
    wait_until(lambda: driver.claims.get("uid-c1") is not None, 10, "the watch shows the claim")
    reading = threading.Event()
    wait = driver.claims.wait

    def noted_wait(*args: Any, **kwargs: Any) -> Any:
        reading.set()
        return wait(*args, **kwargs)

    driver.claims.wait = noted_wait  # type: ignore[method-assign]
    stub = kubelet.stub()
    got: list[Any] = []
    call = threading.Thread(target=lambda: got.append(prepare(stub, stale)))
    call.start()
    wait_until(reading.is_set, 10, "prepare reading the cached claim")
    api.modify_claim(make_claim("c1", {"gpus": [5]}, NODE))
    call.join(15)
    assert [d for _, _, d, _ in answer(got[0], stale)] == ["neurondevice5"]


def test_a_claim_allocated_on_another_node_gets_an_error(
    kubelet: FakeKubelet, start_driver: StartDriver, api: FakeApi
) -> None:
    start_driver()
    claim = api.add_claim(make_claim("c1", {"gpus": [0]}, "node-b"))
    resp = prepare(kubelet.stub(), claim)
    assert resp.claims["uid-c1"].error == (
        "default/c1: the claim has no neuron.aws.com devices on node-a"
    )


def test_a_bad_neuron_config_reaches_the_kubelet_as_the_claims_error(
    kubelet: FakeKubelet, start_driver: StartDriver, api: FakeApi, dirs: Dirs
) -> None:
    start_driver()
    claim = api.add_claim(make_claim("c1", {"gpus": [0]}, NODE, config=[neuron_config(2)]))
    resp = prepare(kubelet.stub(), claim)
    assert "logicalNeuronCore 2 applies to trn2" in resp.claims["uid-c1"].error
    assert not os.path.exists(cdi_file(dirs, claim))


def test_a_cdi_spec_that_cannot_be_written_is_the_claims_error(
    kubelet: FakeKubelet, start_driver: StartDriver, api: FakeApi, short_dir: str
) -> None:
    not_a_dir = os.path.join(short_dir, "cdi-is-a-file")
    with open(not_a_dir, "w"):
        pass
    start_driver(cdi_root=not_a_dir)
    claim = api.add_claim(make_claim("c1", {"gpus": [0]}, NODE))
    error = prepare(kubelet.stub(), claim).claims["uid-c1"].error
    assert error.startswith("default/c1: [Errno 17] File exists")


# --- NodeUnprepareResources ---
@pytest.mark.parametrize("version", ["v1", "v1beta1"])
def test_unprepare_removes_the_cdi_spec_and_the_checkpoint_entry(
    kubelet: FakeKubelet, start_driver: StartDriver, api: FakeApi, dirs: Dirs, version: str
) -> None:
    start_driver()
    claim = api.add_claim(make_claim("c1", {"gpus": [0]}, NODE))
    stub = kubelet.stub(version)
    answer(prepare(stub, claim, version=version), claim)
    resp = unprepare(stub, claim, version=version)
    assert resp.claims["uid-c1"].error == ""
    assert not os.path.exists(cdi_file(dirs, claim))
    assert (
        Checkpoint(os.path.join(dirs.plugins, "neuron.aws.com", "checkpoint.json")).uids() == set()
    )


def test_unpreparing_twice_or_an_unknown_claim_is_not_an_error(
    kubelet: FakeKubelet, start_driver: StartDriver, api: FakeApi
) -> None:
    start_driver()
    claim = api.add_claim(make_claim("c1", {"gpus": [0]}, NODE))
    stub = kubelet.stub()
    answer(prepare(stub, claim), claim)
    unprepare(stub, claim)
    resp = unprepare(stub, claim, make_claim("never-seen"))
    assert set(resp.claims) == {"uid-c1", "uid-never-seen"}
    assert all(entry.error == "" for entry in resp.claims.values())


def test_a_claim_unprepared_and_prepared_again_gets_a_new_cdi_spec(
    kubelet: FakeKubelet, start_driver: StartDriver, api: FakeApi, dirs: Dirs
) -> None:
    start_driver()
    claim = api.add_claim(make_claim("c1", {"gpus": [0]}, NODE))
    stub = kubelet.stub()
    answer(prepare(stub, claim), claim)
    unprepare(stub, claim)
    answer(prepare(stub, claim), claim)
    assert os.path.exists(cdi_file(dirs, claim))
