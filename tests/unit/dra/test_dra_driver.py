"""The DRA driver in-process against the kubelet and API stand-ins: registration, the
ResourceSlices it keeps published, NodePrepareResources and NodeUnprepareResources over both
versions of the service, restarts of the driver and of the kubelet, and stopping."""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
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
from neuron_k8s.dra.checkpoint import Checkpoint
from neuron_k8s.dra.driver import Driver

StartDriver = Callable[..., Driver]


def cdi_file(dirs: Dirs, claim: dict[str, Any]) -> str:
    return os.path.join(dirs.cdi, f"neuron.aws.com-{claim['metadata']['uid']}.json")


def cdi_env(dirs: Dirs, claim: dict[str, Any]) -> dict[str, list[str]]:
    """The env of each CDI device of a claim's spec, by device name."""
    with open(cdi_file(dirs, claim)) as f:
        spec = json.load(f)
    return {d["name"]: d["containerEdits"]["env"] for d in spec["devices"]}


def generation(api: FakeApi) -> int:
    (gen,) = {s["spec"]["pool"]["generation"] for s in api.node_slices(NODE)}
    return int(gen)


def metric(driver: Driver, name: str, **labels: str) -> float:
    return driver.metrics.registry.get_sample_value(name, labels) or 0.0


def http_get(driver: Driver, path: str) -> tuple[int, str]:
    assert driver.http is not None
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{driver.http.port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


# --- registration ---
def test_registers_as_a_dra_plugin_named_neuron_aws_com_speaking_v1_and_v1beta1(
    kubelet: FakeKubelet, start_driver: StartDriver, dirs: Dirs
) -> None:
    driver = start_driver()
    (reg,) = kubelet.registered()
    assert reg.info.type == "DRAPlugin"
    assert reg.info.name == "neuron.aws.com"
    assert list(reg.info.supported_versions) == ["v1.DRAPlugin", "v1beta1.DRAPlugin"]
    assert reg.info.endpoint == os.path.join(dirs.plugins, "neuron.aws.com", "dra.sock")
    assert reg.socket == os.path.join(dirs.registry, "neuron.aws.com-reg.sock")
    assert metric(driver, "neuron_dra_driver_registered") == 1


def test_with_a_pod_uid_both_socket_names_carry_it(
    kubelet: FakeKubelet, start_driver: StartDriver, dirs: Dirs
) -> None:
    start_driver(pod_uid="1234-abcd")
    (reg,) = kubelet.registered()
    assert reg.socket == os.path.join(dirs.registry, "neuron.aws.com-1234-abcd-reg.sock")
    assert reg.info.endpoint == os.path.join(dirs.plugins, "neuron.aws.com", "dra-1234-abcd.sock")


def test_deleted_socket_files_are_served_again_and_registered_again(
    kubelet: FakeKubelet, start_driver: StartDriver, api: FakeApi
) -> None:
    driver = start_driver()
    assert driver.sockets is not None
    api.add_claim(make_claim("c1", {"gpus": [0]}, NODE))
    os.unlink(driver.sockets.reg_socket)
    os.unlink(driver.sockets.dra_socket)
    wait_until(lambda: len(kubelet.registered()) == 2, 10, "a second registration")
    assert os.path.exists(driver.sockets.dra_socket)
    resp = prepare(kubelet.stub(), make_claim("c1"))
    assert [d for _, _, d, _ in answer(resp, make_claim("c1"))] == ["neurondevice0"]


def test_a_restarted_kubelet_registers_the_driver_again_and_gets_its_slices_back(
    kubelet: FakeKubelet, start_driver: StartDriver, api: FakeApi
) -> None:
    start_driver()
    kubelet.restart()
    api.delete_all_slices()
    wait_until(lambda: len(kubelet.registered()) == 2, 10, "a second registration")
    wait_until(lambda: len(api.published_devices(NODE)) == 16, 10, "slices published again")


def test_a_registration_the_kubelet_refuses_leaves_the_driver_unregistered_with_its_error(
    kubelet: FakeKubelet, start_driver: StartDriver
) -> None:
    kubelet.refuse = "plugin neuron.aws.com already registered"
    driver = start_driver(wait=False)
    assert driver.sockets is not None
    state = driver.sockets.state
    wait_until(lambda: state.error, 10, "the kubelet's answer")
    assert state.error == "plugin neuron.aws.com already registered"
    assert not state.registered.is_set()
    assert metric(driver, "neuron_dra_driver_registered") == 0


# --- ResourceSlices ---
def test_a_trn1_32xlarge_node_publishes_its_sixteen_devices_in_a_pool_named_after_the_node(
    start_driver: StartDriver, api: FakeApi
) -> None:
    start_driver()
    (only,) = api.node_slices(NODE)
    assert only["spec"]["pool"]["name"] == NODE
    assert only["spec"]["pool"]["resourceSliceCount"] == 1
    assert (only["spec"]["nodeName"], only["spec"]["driver"]) == (NODE, "neuron.aws.com")
    assert [d["name"] for d in only["spec"]["devices"]] == [f"neurondevice{i}" for i in range(16)]
    assert only["spec"]["devices"][0]["attributes"]["instanceType"] == {"string": "trn1.32xlarge"}
    assert only["spec"]["devices"][0]["attributes"]["neuronDriverVersion"] == {"string": "fake"}


def test_the_slices_belong_to_the_node_so_they_go_when_it_goes(
    start_driver: StartDriver, api: FakeApi
) -> None:
    start_driver()
    (only,) = api.node_slices(NODE)
    assert only["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Node", "name": NODE, "uid": f"uid-node-{NODE}"}
    ]


def test_an_inf2_node_publishes_the_devices_of_its_instance_type_label(
    start_driver: StartDriver, api: FakeApi
) -> None:
    api.add_node("inf-node", "inf2.24xlarge")
    start_driver(node_name="inf-node")
    assert api.published_devices("inf-node") == [f"neurondevice{i}" for i in range(6)]
    assert api.node_slices(NODE) == []


def test_slices_deleted_by_a_starting_kubelet_are_published_again(
    start_driver: StartDriver, api: FakeApi
) -> None:
    start_driver()
    api.delete_all_slices()
    wait_until(lambda: len(api.published_devices(NODE)) == 16, 10, "slices published again")


def test_a_device_marked_unhealthy_leaves_the_slice_in_a_newer_pool_generation(
    start_driver: StartDriver, api: FakeApi, dirs: Dirs
) -> None:
    start_driver()
    before = generation(api)
    with open(dirs.health, "w") as f:
        f.write("3\n")
    wait_until(lambda: "neurondevice3" not in api.published_devices(NODE), 10, "device 3 gone")
    assert len(api.published_devices(NODE)) == 15
    assert generation(api) > before


def test_a_device_that_recovers_is_published_again_in_a_newer_generation(
    start_driver: StartDriver, api: FakeApi, dirs: Dirs
) -> None:
    with open(dirs.health, "w") as f:
        f.write("3\n")
    start_driver()
    assert "neurondevice3" not in api.published_devices(NODE)
    before = generation(api)
    os.unlink(dirs.health)
    wait_until(lambda: "neurondevice3" in api.published_devices(NODE), 10, "device 3 back")
    assert generation(api) > before


def test_unchanged_slices_are_not_written_again(start_driver: StartDriver, api: FakeApi) -> None:
    driver = start_driver()
    (only,) = api.node_slices(NODE)
    version = only["metadata"]["resourceVersion"]
    assert driver.publisher is not None
    for _ in range(3):
        driver.publisher.sync()
    assert api.node_slices(NODE)[0]["metadata"]["resourceVersion"] == version


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


def test_each_request_of_a_claim_gets_its_own_cdi_device(
    kubelet: FakeKubelet, start_driver: StartDriver, api: FakeApi, dirs: Dirs
) -> None:
    start_driver()
    claim = api.add_claim(make_claim("c1", {"train": [0], "eval": [1]}, NODE))
    devices = answer(prepare(kubelet.stub(), claim), claim)
    assert [(r, ids) for r, _, _, ids in devices] == [
        ("train", ["neuron.aws.com/claim=uid-c1-train"]),
        ("eval", ["neuron.aws.com/claim=uid-c1-eval"]),
    ]
    assert cdi_env(dirs, claim) == {
        "uid-c1-train": ["NEURON_RT_VISIBLE_CORES=0,1"],
        "uid-c1-eval": ["NEURON_RT_VISIBLE_CORES=2,3"],
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


# --- restarts ---
def test_a_restarted_driver_answers_prepare_from_its_checkpoint_after_the_claim_is_gone(
    kubelet: FakeKubelet, start_driver: StartDriver, api: FakeApi
) -> None:
    first = start_driver()
    claim = api.add_claim(make_claim("c1", {"gpus": [8, 9, 10, 11]}, NODE))
    before = prepare(kubelet.stub(), claim)
    first.stop()
    api.delete_claim("uid-c1")
    start_driver()
    after = prepare(kubelet.stub(), claim)
    assert answer(after, claim) == answer(before, claim)


def test_a_restarted_driver_unprepares_a_claim_whose_resourceclaim_is_gone(
    kubelet: FakeKubelet, start_driver: StartDriver, api: FakeApi, dirs: Dirs
) -> None:
    first = start_driver()
    claim = api.add_claim(make_claim("c1", {"gpus": [0]}, NODE))
    answer(prepare(kubelet.stub(), claim), claim)
    first.stop()
    api.delete_claim("uid-c1")
    start_driver()
    resp = unprepare(kubelet.stub(), claim)
    assert resp.claims["uid-c1"].error == ""
    assert not os.path.exists(cdi_file(dirs, claim))


# --- stopping ---
def test_stop_removes_both_sockets_and_the_slices_of_the_last_instance(
    start_driver: StartDriver, api: FakeApi
) -> None:
    driver = start_driver()
    assert driver.sockets is not None
    sockets = (driver.sockets.dra_socket, driver.sockets.reg_socket)
    driver.stop()
    assert [p for p in sockets if os.path.exists(p)] == []
    assert api.node_slices(NODE) == []


def test_stop_leaves_the_slices_to_another_instance_still_registered(
    kubelet: FakeKubelet, start_driver: StartDriver, api: FakeApi
) -> None:
    old = start_driver(pod_uid="old")
    new = start_driver(pod_uid="new")
    old.stop()
    assert len(api.published_devices(NODE)) == 16
    assert new.sockets is not None and os.path.exists(new.sockets.reg_socket)


def test_stop_takes_the_slices_though_another_drivers_socket_shares_the_name_prefix(
    start_driver: StartDriver, api: FakeApi, dirs: Dirs
) -> None:
    driver = start_driver()
    other = os.path.join(dirs.registry, "neuron.aws.com.test-reg.sock")
    open(other, "w").close()
    driver.stop()
    assert api.node_slices(NODE) == []


def test_a_malformed_claim_fails_its_own_entry_and_not_the_call(
    kubelet: FakeKubelet, start_driver: StartDriver, api: FakeApi
) -> None:
    start_driver()
    good = api.add_claim(make_claim("good", {"gpus": [0]}, NODE))
    bad = make_claim("bad", {"gpus": [1]}, NODE)
    bad["status"]["allocation"]["devices"]["config"] = [{"source": "FromClaim", "opaque": "x"}]
    api.add_claim(bad)
    resp = prepare(kubelet.stub(), bad, good)
    assert resp.claims["uid-bad"].error.startswith("default/bad: ")
    assert answer(resp, good) == [
        ("gpus", NODE, "neurondevice0", ["neuron.aws.com/claim=uid-good-gpus"])
    ]


# --- health endpoints ---
def test_readyz_answers_200_once_registered_published_and_listed(
    start_driver: StartDriver,
) -> None:
    driver = start_driver(health_port=0)
    assert http_get(driver, "/readyz") == (200, "registered, slices published\n")
    assert http_get(driver, "/healthz") == (200, "ok\n")


def test_readyz_answers_503_while_the_kubelet_has_not_registered_the_driver(
    start_driver: StartDriver, short_dir: str
) -> None:
    elsewhere = os.path.join(short_dir, "not-the-kubelets")
    driver = start_driver(wait=False, health_port=0, registrar_dir=elsewhere)
    assert driver.publisher is not None
    wait_until(driver.publisher.published.is_set, 10, "slices published")
    assert http_get(driver, "/readyz") == (503, "not registered with the kubelet\n")


def test_metrics_count_the_devices_by_health(
    start_driver: StartDriver, api: FakeApi, dirs: Dirs
) -> None:
    with open(dirs.health, "w") as f:
        f.write("0\n1\n")
    driver = start_driver(health_port=0)
    _, text = http_get(driver, "/metrics")
    assert 'neuron_dra_driver_devices{health="healthy"} 14.0' in text
    assert 'neuron_dra_driver_devices{health="unhealthy"} 2.0' in text
