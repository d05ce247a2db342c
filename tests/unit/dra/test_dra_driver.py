"""The DRA driver in-process against the kubelet and API stand-ins: registration, the
ResourceSlices it keeps published, restarts of the driver and of the kubelet, stopping, and its
health endpoints (NodePrepareResources and NodeUnprepareResources: test_dra_prepare.py)."""

from __future__ import annotations

import os

from dra_harness import (
    NODE,
    Dirs,
    FakeApi,
    FakeKubelet,
    answer,
    make_claim,
    prepare,
    unprepare,
    wait_until,
)
from driver_checks import StartDriver, cdi_file, generation, http_get, metric


# --- registration ---
def test_registers_as_a_dra_plugin_named_neuron_aws_com_speaking_v1_and_v1beta1(
    kubelet: FakeKubelet, start_driver: StartDriver, dirs: Dirs
) -> None:
    driver = start_driver()
    (reg,) = kubelet.registered()
    assert reg.info.type == "DRAPlugin"
    assert reg.info.name == "neuron.aws.com"
    assert list(reg.info.supported_versions)[:2] == ["v1.DRAPlugin", "v1beta1.DRAPlugin"]
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


def tainted(api: FakeApi) -> list[str]:
    """The published devices that carry a taint (an unhealthy one, taints.py)."""
    return [
        d["name"] for s in api.node_slices(NODE) for d in s["spec"]["devices"] if d.get("taints")
    ]


def test_a_device_marked_unhealthy_is_tainted_in_a_newer_pool_generation(
    start_driver: StartDriver, api: FakeApi, dirs: Dirs
) -> None:
    start_driver()
    before = generation(api)
    with open(dirs.health, "w") as f:
        f.write("3\n")
    wait_until(lambda: tainted(api) == ["neurondevice3"], 10, "device 3 tainted")
    assert len(api.published_devices(NODE)) == 16
    assert generation(api) > before


def test_a_device_that_recovers_loses_its_taint_in_a_newer_generation(
    start_driver: StartDriver, api: FakeApi, dirs: Dirs
) -> None:
    with open(dirs.health, "w") as f:
        f.write("3\n")
    start_driver()
    assert tainted(api) == ["neurondevice3"]
    before = generation(api)
    os.unlink(dirs.health)
    wait_until(lambda: tainted(api) == [], 10, "device 3 untainted")
    assert generation(api) > before


def test_unchanged_slices_are_not_written_again(start_driver: StartDriver, api: FakeApi) -> None:
    driver = start_driver()
    (only,) = api.node_slices(NODE)
    version = only["metadata"]["resourceVersion"]
    assert driver.publisher is not None
    for _ in range(3):
        driver.publisher.sync()
    assert api.node_slices(NODE)[0]["metadata"]["resourceVersion"] == version


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
