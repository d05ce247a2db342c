"""Partitions of the DRA driver on kind (docs/dra.md, "Core partitions"): besides whole
devices, the driver publishes sets of contiguous cores (DeviceClass neuroncore.aws.com) and
runs of adjacent devices (neurondevices.aws.com), whose shared counters, in slices of their own
(the resource.k8s.io/v1 layout since 1.35), keep the default kube-scheduler from handing one
core to two claims. The cluster runs its release's default feature gates; the workers are a
fake inf2.48xlarge and a fake trn1.32xlarge labelled neuron.k8s.local/dra=true."""

from __future__ import annotations

from typing import Any

from conftest import Cluster, wait_for
from dra_claims import (
    CORE_SET_PREFIX,
    DEVICE_SET_PREFIX,
    Claims,
    claims_fixture,
    dra_node,
    is_whole,
    node_slices,
)

INF2, TRN1 = "inf2.48xlarge", "trn1.32xlarge"
REFUSED = "cannot allocate all claims"

inf2 = claims_fixture(INF2, "inf2")
trn1 = claims_fixture(TRN1, "trn1")


def contiguous(cores: list[int]) -> bool:
    return cores == list(range(cores[0], cores[0] + len(cores)))


def published(cluster: Cluster, instance_type: str) -> tuple[list[dict[str, Any]], list[str]]:
    node = dra_node(cluster, instance_type)
    slices = wait_for(f"the {instance_type} DRA node's slices", lambda: node_slices(cluster, node))
    return slices, [d["name"] for s in slices for d in s["spec"].get("devices") or []]


def test_counters_and_devices_are_published_in_slices_of_their_own(cluster: Cluster) -> None:
    slices, _ = published(cluster, INF2)
    counters = [s for s in slices if s["spec"].get("sharedCounters")]
    devices = [s for s in slices if s["spec"].get("devices")]
    # The API server kept the counters, and every slice holds one kind only.
    assert counters and devices and not [s for s in counters if s in devices]
    sets = {c["name"] for s in counters for c in s["spec"]["sharedCounters"]}
    consumed = {
        use["counterSet"]
        for s in devices
        for d in s["spec"]["devices"]
        for use in d.get("consumesCounters") or []
    }
    assert consumed == sets
    assert all(d.get("consumesCounters") for s in devices for d in s["spec"]["devices"])


def test_the_inf2_node_publishes_its_devices_core_sets_and_device_sets(cluster: Cluster) -> None:
    _, names = published(cluster, INF2)
    assert sorted(n for n in names if is_whole(n)) == sorted(f"neurondevice{i}" for i in range(12))
    # Runs of 1, 2, 4 and 8 of the 24 cores, at every start: 24 + 23 + 21 + 17.
    assert len([n for n in names if n.startswith(CORE_SET_PREFIX)]) == 85
    # Runs of 2 to 12 of the 12 devices: 11 + 10 + ... + 1.
    assert len([n for n in names if n.startswith(DEVICE_SET_PREFIX)]) == 66
    # A set may cross what were group boundaries in 1.34's layout (devices 3 and 4).
    assert "neuroncores7-8" in names


def test_the_trn1_node_publishes_no_set_that_leaves_an_aligned_block(cluster: Cluster) -> None:
    _, names = published(cluster, TRN1)
    assert "neuroncores6-7" in names and "neuroncores7-8" not in names
    blocks = sorted(n for n in names if n.startswith(DEVICE_SET_PREFIX))
    want = [f"{DEVICE_SET_PREFIX}{a}-{a + n - 1}" for n in (4, 8, 16) for a in range(0, 16, n)]
    assert blocks == sorted(want)


def test_a_claim_for_two_contiguous_cores_on_inf2_sees_those_two_cores(inf2: Claims) -> None:
    inf2.core_template("two", 2)
    inf2.pod("two", "two")
    inf2.running("two")
    cores = inf2.sees_its_cores("two")
    assert len(cores) == 2 and contiguous(cores), cores


def test_a_core_set_and_a_whole_device_claim_on_inf2_never_overlap(inf2: Claims) -> None:
    inf2.core_template("two", 2)
    # Every whole device of the node. (ExactCount 12 would be refused too, but the allocator
    # tries the orderings of the 11 free devices first, and may report its 10 s filter timeout
    # instead.)
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


def test_a_core_set_across_the_old_group_boundary_and_whole_devices_never_overlap(
    inf2: Claims,
) -> None:
    inf2.core_template("across", 2, first=7)
    inf2.device_template("device-3", 3)
    inf2.device_template("device-4", 4)
    inf2.pod("across", "across")
    inf2.running("across")
    assert inf2.sees_its_cores("across") == [7, 8]
    # Core 7 is device 3's, core 8 device 4's: neither device can be had whole.
    inf2.pod("three", "device-3")
    inf2.pod("four", "device-4")
    assert REFUSED in inf2.unschedulable("three")
    assert REFUSED in inf2.unschedulable("four")
    inf2.delete("across")
    inf2.running("three")
    inf2.running("four")
    assert inf2.sees_its_claim("three") == [3] and inf2.sees_its_claim("four") == [4]


def test_two_and_four_adjacent_devices_on_inf2_get_contiguous_runs(inf2: Claims) -> None:
    inf2.device_set_template("two", 2)
    inf2.device_set_template("four", 4)
    inf2.pod("two", "two")
    inf2.pod("four", "four")
    inf2.running("two")
    inf2.running("four")
    two, four = inf2.sees_its_cores("two"), inf2.sees_its_cores("four")
    assert len(two) == 4 and contiguous(two), two
    assert len(four) == 8 and contiguous(four), four
    assert set(two).isdisjoint(four)


def test_adjacent_devices_go_around_held_devices(inf2: Claims) -> None:
    """Devices 2 and 7 held whole: four adjacent devices remain as 3-6 or 8-11 only."""
    for device in (2, 7):
        inf2.device_template(f"device-{device}", device)
        inf2.pod(f"device-{device}", f"device-{device}")
        inf2.running(f"device-{device}")
    inf2.device_set_template("four", 4)
    inf2.pod("four", "four")
    inf2.running("four")
    assert inf2.sees_its_cores("four") in (list(range(6, 14)), list(range(16, 24)))


def test_core_sets_of_one_two_and_four_beside_whole_devices_on_trn1_never_share_a_core(
    trn1: Claims,
) -> None:
    trn1.template("block", 4, group=4)
    for size in (1, 2, 4):
        trn1.core_template(f"cores-{size}", size)
    trn1.pod("block", "block")
    trn1.running("block")
    names = [f"cores-{size}-{k}" for size in (1, 2, 4) for k in range(2)]
    for name in names:
        trn1.pod(name, name.rsplit("-", 1)[0])
    for name in names:
        trn1.running(name)
    held = {"block": trn1.sees_its_cores("block")}
    held.update({n: trn1.sees_its_cores(n) for n in names})
    every = [c for cores in held.values() for c in cores]
    assert len(every) == len(set(every)), held
    for name in names:
        cores = held[name]
        # A set of 2 or 4 cores stays inside one aligned block of 4 devices (8 cores).
        assert contiguous(cores) and cores[0] // 8 == cores[-1] // 8, (name, cores)
