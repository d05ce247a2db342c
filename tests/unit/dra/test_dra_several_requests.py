"""Containers that take several Neuron requests: the env each container ends with, built as the
kubelet and the container runtime build it from the driver's answer and CDI specs
(driver_checks.container_env), and the claims whose requests one container cannot use together.
A container that lists two Neuron claims is a limit of CDI (docs/dra.md), not tested here."""

from __future__ import annotations

from dra_harness import (
    NODE,
    Dirs,
    FakeApi,
    FakeKubelet,
    answer,
    make_claim,
    neuron_config,
    prepare,
    result,
)
from driver_checks import StartDriver, container_env

CORES = "NEURON_RT_VISIBLE_CORES"


def test_a_container_using_a_claim_of_two_requests_sees_the_cores_of_both(
    kubelet: FakeKubelet, start_driver: StartDriver, api: FakeApi, dirs: Dirs
) -> None:
    start_driver()
    claim = api.add_claim(make_claim("c1", {"a": [0], "b": [1]}, NODE))
    resp = prepare(kubelet.stub(), claim)
    assert container_env(dirs, (resp, claim, ""))[CORES] == "0,1,2,3"


def test_a_container_using_one_request_of_that_claim_sees_that_requests_cores_only(
    kubelet: FakeKubelet, start_driver: StartDriver, api: FakeApi, dirs: Dirs
) -> None:
    start_driver()
    claim = api.add_claim(make_claim("c1", {"a": [0], "b": [1]}, NODE))
    resp = prepare(kubelet.stub(), claim)
    assert container_env(dirs, (resp, claim, "a"))[CORES] == "0,1"
    assert container_env(dirs, (resp, claim, "b"))[CORES] == "2,3"


def test_a_container_using_a_claim_of_three_requests_sees_all_their_cores_in_one_range(
    kubelet: FakeKubelet, start_driver: StartDriver, api: FakeApi, dirs: Dirs
) -> None:
    start_driver()
    claim = api.add_claim(make_claim("c1", {"x": [5], "y": [4], "z": [6, 7]}, NODE))
    resp = prepare(kubelet.stub(), claim)
    assert container_env(dirs, (resp, claim, ""))[CORES] == ",".join(map(str, range(8, 16)))


def test_a_whole_device_and_the_core_set_beside_it_are_seen_together(
    kubelet: FakeKubelet, start_driver: StartDriver, api: FakeApi, dirs: Dirs
) -> None:
    start_driver()
    claim = make_claim("c1", {"dev": [0]}, NODE, results=[result("set", "neuroncores2-3", NODE)])
    api.add_claim(claim)
    resp = prepare(kubelet.stub(), claim)
    assert container_env(dirs, (resp, claim, ""))[CORES] == "0,1,2,3"


def test_a_logical_core_size_reaches_a_container_using_the_whole_claim(
    kubelet: FakeKubelet, start_driver: StartDriver, api: FakeApi, dirs: Dirs
) -> None:
    api.add_node("trn2-node", "trn2.48xlarge")
    start_driver(node_name="trn2-node")
    claim = make_claim("c1", {"a": [0], "b": [1]}, "trn2-node", config=[neuron_config(1)])
    api.add_claim(claim)
    resp = prepare(kubelet.stub(), claim)
    env = container_env(dirs, (resp, claim, ""))
    assert (env[CORES], env["NEURON_LOGICAL_NC_CONFIG"]) == (",".join(map(str, range(16))), "1")


def test_a_claim_whose_requests_are_not_adjacent_is_prepared_with_their_true_union(
    kubelet: FakeKubelet, start_driver: StartDriver, api: FakeApi, dirs: Dirs
) -> None:
    # One container per request is a normal pod; the driver cannot tell, so it refuses
    # nothing and the whole-claim device says what the claim really holds.
    start_driver()
    claim = api.add_claim(make_claim("c1", {"a": [0], "b": [2]}, NODE))
    resp = prepare(kubelet.stub(), claim)
    assert not resp.claims["uid-c1"].error
    assert container_env(dirs, (resp, claim, ""))[CORES] == "0,1,4,5"
    assert container_env(dirs, (resp, claim, "b"))[CORES] == "4,5"


def test_requests_of_different_logical_core_sizes_in_one_claim_are_refused(
    kubelet: FakeKubelet, start_driver: StartDriver, api: FakeApi
) -> None:
    api.add_node("trn2-node", "trn2.48xlarge")
    start_driver(node_name="trn2-node")
    config = [neuron_config(1, requests=["a"]), neuron_config(2, requests=["b"])]
    claim = api.add_claim(make_claim("c1", {"a": [0], "b": [1]}, "trn2-node", config=config))
    error = prepare(kubelet.stub(), claim).claims["uid-c1"].error
    assert "claim default/c1: its requests ask for different logical NeuronCore sizes" in error


def test_requests_given_the_same_cores_are_refused(
    kubelet: FakeKubelet, start_driver: StartDriver, api: FakeApi
) -> None:
    start_driver()
    claim = make_claim("c1", {"dev": [1]}, NODE, results=[result("set", "neuroncores2-3", NODE)])
    api.add_claim(claim)
    error = prepare(kubelet.stub(), claim).claims["uid-c1"].error
    assert error.endswith("claim default/c1: its requests were given some cores twice")


def test_a_claim_of_one_request_gets_no_whole_claim_device(
    kubelet: FakeKubelet, start_driver: StartDriver, api: FakeApi
) -> None:
    start_driver()
    claim = api.add_claim(make_claim("c1", {"a": [0, 2]}, NODE))
    devices = answer(prepare(kubelet.stub(), claim), claim)
    assert {r for r, _, _, _ in devices} == {"a"}
