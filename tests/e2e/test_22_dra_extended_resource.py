"""Pods that ask for aws.amazon.com/neuron, as on the device-plugin path, served by the DRA
driver (docs/dra.md, "Pods that ask for aws.amazon.com/neuron"): the chart's whole-device
DeviceClass names that extended resource (KEP-5004), and kind-config.yaml turns on
DRAExtendedResource, so the default scheduler makes a claim for such a pod on a DRA worker,
which advertises no aws.amazon.com/neuron capacity."""

from __future__ import annotations

from conftest import NEURON, wait_for
from dra_claims import Claims, claims_fixture, held_on

inf2 = claims_fixture("inf2.48xlarge", "inf2")


def test_a_pod_asking_for_one_neuron_device_gets_one_whole_device_through_a_claim(
    inf2: Claims,
) -> None:
    inf2.resource_pod("one", NEURON, 1)
    inf2.running("one")
    (device,) = inf2.devices("one")
    assert inf2.sees_its_cores("one") == [2 * device, 2 * device + 1]


def test_two_such_pods_never_share_a_device(inf2: Claims) -> None:
    inf2.resource_pod("a", NEURON, 1)
    inf2.resource_pod("b", NEURON, 1)
    inf2.running("a")
    inf2.running("b")
    assert set(inf2.sees_its_claim("a")).isdisjoint(inf2.sees_its_claim("b"))


def test_the_claim_made_for_such_a_pod_goes_with_the_pod(inf2: Claims) -> None:
    inf2.resource_pod("one", NEURON, 1)
    inf2.running("one")
    name = inf2.claim_name("one")
    inf2.delete("one")
    wait_for(f"claim {name} deleted with its pod", lambda: inf2.claim_gone(name), 120)
    assert not held_on(inf2.node)
