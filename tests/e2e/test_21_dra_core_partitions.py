"""Core partitions of the DRA driver on kind (docs/dra.md, "Core partitions"): besides whole
devices, the driver publishes sets of contiguous cores (DeviceClass neuroncore.aws.com) whose
shared counters keep the default kube-scheduler from handing one core to two claims.
kind-config.yaml turns on DRAPartitionableDevices; the workers are a fake inf2.48xlarge and a
fake trn1.32xlarge labelled neuron.k8s.local/dra=true."""

from __future__ import annotations

from conftest import Cluster, wait_for
from dra_claims import Claims, claims_fixture, dra_node, is_whole, node_slices

INF2, TRN1 = "inf2.48xlarge", "trn1.32xlarge"
REFUSED = "cannot allocate all claims"

inf2 = claims_fixture(INF2, "inf2")
trn1 = claims_fixture(TRN1, "trn1")


def contiguous(cores: list[int]) -> bool:
    return cores == list(range(cores[0], cores[0] + len(cores)))


def test_the_inf2_node_publishes_core_sets_with_their_counters_beside_its_devices(
    cluster: Cluster,
) -> None:
    node = dra_node(cluster, INF2)
    slices = wait_for("the inf2 DRA node's slices", lambda: node_slices(cluster, node), 120)
    names = [d["name"] for s in slices for d in s["spec"]["devices"]]
    assert sorted(n for n in names if is_whole(n)) == sorted(f"neurondevice{i}" for i in range(12))
    # Every run of 1 to 8 cores inside each group of 4 devices: 36 a group, 3 groups.
    assert len([n for n in names if not is_whole(n)]) == 108
    # The API server kept the counters: its DRAPartitionableDevices gate is on.
    assert all(s["spec"].get("sharedCounters") for s in slices), [
        s["metadata"]["name"] for s in slices
    ]


def test_a_claim_for_two_contiguous_cores_on_inf2_sees_those_two_cores(inf2: Claims) -> None:
    inf2.core_template("two", 2)
    inf2.pod("two", "two")
    inf2.running("two")
    cores = inf2.sees_its_cores("two")
    assert len(cores) == 2 and contiguous(cores), cores


def test_a_core_set_and_a_whole_device_claim_on_inf2_never_overlap(inf2: Claims) -> None:
    inf2.core_template("two", 2)
    # Every whole device of the node. (ExactCount 12 would be refused too, but the 1.34
    # allocator tries the orderings of the 11 free devices first, and reports its 10 s filter
    # timeout instead.)
    inf2.template("all", 0)
    inf2.pod("cores", "two")
    inf2.running("cores")
    inf2.pod("every-device", "all")
    # Two cores are held: no claim for all twelve devices can be met.
    assert REFUSED in inf2.unschedulable("every-device")
    inf2.delete("cores")
    inf2.running("every-device")
    assert inf2.sees_its_claim("every-device") == list(range(12))
    # Every device is held whole: no core is left for a core set.
    inf2.pod("cores-again", "two")
    assert REFUSED in inf2.unschedulable("cores-again")
    inf2.delete("every-device")
    inf2.running("cores-again")
    assert len(inf2.sees_its_cores("cores-again")) == 2


def test_core_sets_and_whole_devices_filling_inf2_never_share_a_core(inf2: Claims) -> None:
    inf2.template("eight", 8)
    inf2.core_template("two", 2)
    inf2.pod("devices", "eight")
    inf2.running("devices")
    held = {"devices": inf2.sees_its_cores("devices")}
    names = tuple(f"cores-{i}" for i in range(5))
    for name in names:
        inf2.pod(name, "two")
    running, refused = wait_for("the core-set pods placed or refused", lambda: inf2.settled(names))
    # 8 cores are left: at most four sets of 2; at least two, however they are cut.
    assert 2 <= len(running) <= 4 and refused, (running, refused)
    held.update({n: inf2.sees_its_cores(n) for n in running})
    every = [c for cores in held.values() for c in cores]
    assert len(every) == len(set(every)), held
    inf2.delete("devices")
    for name in refused:
        inf2.running(name)
    held = {n: inf2.sees_its_cores(n) for n in names}
    every = [c for cores in held.values() for c in cores]
    assert len(every) == len(set(every)) == 10, held


def test_four_contiguous_cores_on_trn1_lie_inside_one_aligned_block(trn1: Claims) -> None:
    trn1.core_template("four", 4)
    trn1.pod("four", "four")
    trn1.running("four")
    cores = trn1.sees_its_cores("four")
    # trn1's blocks of 4 devices hold 8 cores each.
    assert len(cores) == 4 and contiguous(cores) and cores[0] // 8 == cores[-1] // 8, cores
