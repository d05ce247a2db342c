"""The DRA driver with core partitions (--core-partitions), in-process against the kubelet and
API stand-ins: the slices it keeps published on a 1.37 API server, its fallback where the API
server refuses or drops counters, and claims for a core set or a device set prepared as their
cores."""

from __future__ import annotations

from typing import Any

from dra_harness import (
    Dirs,
    FakeApi,
    FakeKubelet,
    answer,
    make_claim,
    prepare,
    result,
    wait_until,
)
from driver_checks import StartDriver, cdi_env
from neuron_k8s.dra.devicesets import is_device_set
from neuron_k8s.dra.partitions import is_core_set
from neuron_k8s.dra.taints import UNHEALTHY_KEY

INF = "inf-node"
WHOLE = [f"neurondevice{i}" for i in range(12)]


def devices_by_name(api: FakeApi) -> dict[str, dict[str, Any]]:
    return {d["name"]: d for s in api.node_slices(INF) for d in s["spec"].get("devices") or []}


def test_an_inf2_node_publishes_a_counter_slice_then_whole_devices_core_sets_device_sets(
    start_driver: StartDriver, api: FakeApi
) -> None:
    api.add_node(INF, "inf2.48xlarge")
    start_driver(node_name=INF, core_partitions=True)
    written = api.node_slices(INF)
    assert {s["spec"]["pool"]["resourceSliceCount"] for s in written} == {len(written)}
    assert [s["spec"]["sharedCounters"][0]["name"] for s in written[:1]] == ["cores-0"]
    names = api.published_devices(INF)
    assert [n for n in names if not is_core_set(n) and not is_device_set(n)] == WHOLE
    assert len([n for n in names if is_core_set(n)]) == 24 + 23 + 21 + 17
    assert len([n for n in names if is_device_set(n)]) == 66


def test_core_set_sizes_all_publishes_every_contiguous_run(
    start_driver: StartDriver, api: FakeApi
) -> None:
    api.add_node(INF, "inf2.48xlarge")
    start_driver(node_name=INF, core_partitions=True, core_set_sizes="all")
    assert len([n for n in api.published_devices(INF) if is_core_set(n)]) == 300


def test_without_the_flag_the_same_node_publishes_whole_devices_only(
    start_driver: StartDriver, api: FakeApi
) -> None:
    api.add_node(INF, "inf2.48xlarge")
    start_driver(node_name=INF)
    assert api.published_devices(INF) == WHOLE


def test_an_api_server_that_drops_counters_gets_whole_devices_and_an_event_on_the_node(
    start_driver: StartDriver, api: FakeApi
) -> None:
    api.keeps_counters = False
    api.add_node(INF, "inf2.48xlarge")
    start_driver(node_name=INF, core_partitions=True)
    assert api.published_devices(INF) == WHOLE
    (event,) = api.events
    assert event["reason"] == "NeuronCorePartitionsUnavailable"
    assert event["involvedObject"]["name"] == INF


def test_a_1_34_api_server_that_refuses_counters_of_other_slices_gets_whole_devices(
    start_driver: StartDriver, api: FakeApi
) -> None:
    api.version_rules = "1.34"
    api.add_node(INF, "inf2.48xlarge")
    start_driver(node_name=INF, core_partitions=True)
    assert api.published_devices(INF) == WHOLE
    assert [e["reason"] for e in api.events] == ["NeuronCorePartitionsUnavailable"]


def test_a_claim_for_a_core_set_across_the_old_group_boundary_sees_exactly_its_cores(
    kubelet: FakeKubelet, start_driver: StartDriver, api: FakeApi, dirs: Dirs
) -> None:
    api.add_node(INF, "inf2.48xlarge")
    start_driver(node_name=INF, core_partitions=True)
    claim = api.add_claim(
        make_claim("c1", pool=INF, results=[result("cores", "neuroncores7-8", INF)])
    )
    assert answer(prepare(kubelet.stub(), claim), claim) == [
        ("cores", INF, "neuroncores7-8", ["neuron.aws.com/claim=uid-c1-cores"])
    ]
    assert cdi_env(dirs, claim) == {"uid-c1-cores": ["NEURON_RT_VISIBLE_CORES=7,8"]}


def test_a_claim_for_a_device_set_sees_the_contiguous_cores_of_its_devices(
    kubelet: FakeKubelet, start_driver: StartDriver, api: FakeApi, dirs: Dirs
) -> None:
    api.add_node(INF, "inf2.48xlarge")
    start_driver(node_name=INF, core_partitions=True)
    claim = api.add_claim(
        make_claim("c2", pool=INF, results=[result("devs", "neurondevices3-4", INF)])
    )
    assert answer(prepare(kubelet.stub(), claim), claim) == [
        ("devs", INF, "neurondevices3-4", ["neuron.aws.com/claim=uid-c2-devs"])
    ]
    assert cdi_env(dirs, claim) == {"uid-c2-devs": ["NEURON_RT_VISIBLE_CORES=6,7,8,9"]}


def test_an_unhealthy_device_taints_its_core_sets_and_device_sets_until_it_recovers(
    start_driver: StartDriver, api: FakeApi, dirs: Dirs
) -> None:
    api.add_node(INF, "inf2.48xlarge")
    start_driver(node_name=INF, core_partitions=True)
    with open(dirs.health, "w") as f:
        f.write("2\n")
    names = ("neurondevice2", "neuroncores3-4", "neurondevices1-2")
    wait_until(lambda: all(devices_by_name(api)[n].get("taints") for n in names), 10, "tainted")
    every = devices_by_name(api)
    for name in names:
        assert [t["key"] for t in every[name]["taints"]] == [UNHEALTHY_KEY]
    assert "taints" not in every["neuroncores6-7"] and "taints" not in every["neurondevices3-4"]
    with open(dirs.health, "w") as f:
        f.write("")
    wait_until(lambda: not devices_by_name(api)["neurondevice2"].get("taints"), 10, "untainted")
