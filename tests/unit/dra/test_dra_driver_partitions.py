"""The DRA driver with core partitions (--core-partitions), in-process against the kubelet and
API stand-ins: the slices it keeps published, and a claim for a core set prepared as its cores."""

from __future__ import annotations

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
from neuron_k8s.dra.partitions import is_core_set

INF = "inf-node"


def test_an_inf2_node_publishes_three_slices_of_four_devices_and_their_core_sets(
    start_driver: StartDriver, api: FakeApi
) -> None:
    api.add_node(INF, "inf2.48xlarge")
    start_driver(node_name=INF, core_partitions=True)
    written = api.node_slices(INF)
    assert [s["spec"]["pool"]["resourceSliceCount"] for s in written] == [3, 3, 3]
    names = api.published_devices(INF)
    assert [n for n in names if not is_core_set(n)] == [f"neurondevice{i}" for i in range(12)]
    assert len([n for n in names if is_core_set(n)]) == 3 * 36


def test_without_the_flag_the_same_node_publishes_whole_devices_only(
    start_driver: StartDriver, api: FakeApi
) -> None:
    api.add_node(INF, "inf2.48xlarge")
    start_driver(node_name=INF)
    assert api.published_devices(INF) == [f"neurondevice{i}" for i in range(12)]


def test_an_api_server_that_drops_counters_gets_whole_devices_only(
    start_driver: StartDriver, api: FakeApi
) -> None:
    api.keeps_counters = False
    api.add_node(INF, "inf2.48xlarge")
    start_driver(node_name=INF, core_partitions=True)
    assert api.published_devices(INF) == [f"neurondevice{i}" for i in range(12)]


def test_a_claim_for_a_core_set_sees_exactly_its_cores(
    kubelet: FakeKubelet, start_driver: StartDriver, api: FakeApi, dirs: Dirs
) -> None:
    api.add_node(INF, "inf2.48xlarge")
    start_driver(node_name=INF, core_partitions=True)
    claim = api.add_claim(
        make_claim("c1", pool=INF, results=[result("cores", "neuroncores5-6", INF)])
    )
    assert answer(prepare(kubelet.stub(), claim), claim) == [
        ("cores", INF, "neuroncores5-6", ["neuron.aws.com/claim=uid-c1-cores"])
    ]
    assert cdi_env(dirs, claim) == {"uid-c1-cores": ["NEURON_RT_VISIBLE_CORES=5,6"]}


def test_an_unhealthy_device_takes_its_core_sets_out_of_the_slices(
    start_driver: StartDriver, api: FakeApi, dirs: Dirs
) -> None:
    api.add_node(INF, "inf2.48xlarge")
    start_driver(node_name=INF, core_partitions=True)
    with open(dirs.health, "w") as f:
        f.write("2\n")
    wait_until(lambda: "neuroncores4-5" not in api.published_devices(INF), 10, "core sets gone")
    names = set(api.published_devices(INF))
    assert "neurondevice2" not in names and "neuroncores3-4" not in names
    assert "neuroncores6-7" in names
