"""Pods that ask for aws.amazon.com/neuron, as on the device-plugin path, served by the DRA
driver (docs/dra.md, "Pods that ask for aws.amazon.com/neuron"): the chart's whole-device
DeviceClass names that extended resource (KEP-5004, GA and on in 1.37), so the default
scheduler makes a claim for such a pod on a DRA worker, which advertises no
aws.amazon.com/neuron capacity. Such a claim can only say "N devices", so the driver prepares
more than one device only where the instance type's rule allows the set the scheduler chose."""

from __future__ import annotations

import time
from typing import Any

from conftest import IMAGE, NEURON, PLUGIN_DIR, PULL_POLICY, wait_for
from dra_claims import Claims, claims_fixture, held_on

inf2 = claims_fixture("inf2.48xlarge", "inf2")
trn1 = claims_fixture("trn1.32xlarge", "trn1")
# The driver's refusal (dra/claims.py mapped_claim_error), in the pod's events.
CANNOT_USE = "which the Neuron runtime cannot use together: trn1.32xlarge serves 1, 4, 8, 16"


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


def prepare_failures(claims: Claims, pod: str) -> str:
    events = claims.cluster.core.list_namespaced_event(
        claims.namespace, field_selector=f"involvedObject.name={pod}"
    ).items
    return " ".join(e.message or "" for e in events if e.type == "Warning")


def test_a_pod_asking_for_one_neuron_device_on_trn1_gets_one_device(trn1: Claims) -> None:
    trn1.resource_pod("one", NEURON, 1)
    trn1.running("one")
    assert len(trn1.sees_its_claim("one")) == 1


def test_four_neuron_devices_on_trn1_run_only_as_an_aligned_block(trn1: Claims) -> None:
    """With device 0 held, the scheduler's first four free devices are 1 to 4, which the
    torus refuses; whatever it picks, the pod runs on an aligned block or is refused at
    prepare with the sentence, and never runs on a set the runtime cannot use."""
    trn1.resource_pod("one", NEURON, 1)
    trn1.running("one")
    trn1.resource_pod("four", NEURON, 4)
    devices = wait_for("a claim for four", lambda: trn1.devices("four") if _has_claim(trn1) else 0)
    if devices[0] % 4 == 0 and devices == list(range(devices[0], devices[0] + 4)):
        trn1.running("four")
        assert trn1.sees_its_claim("four") == devices
        return
    message = wait_for("the prepare refusal", lambda: CANNOT_USE in prepare_failures(trn1, "four"))
    assert message
    assert trn1.cluster.core.read_namespaced_pod("four", trn1.namespace).status.phase == "Pending"


def test_four_neuron_devices_on_an_empty_trn1_get_an_aligned_block(trn1: Claims) -> None:
    trn1.resource_pod("four", NEURON, 4)
    trn1.running("four")
    devices = trn1.sees_its_claim("four")
    assert devices[0] % 4 == 0 and devices == list(range(devices[0], devices[0] + 4)), devices


def _has_claim(claims: Claims) -> bool:
    try:
        return bool(claims.claim_of("four")["status"]["allocation"])
    except (KeyError, StopIteration, TypeError):
        return False


# The kubelet drops a device plugin's endpoint this long after the plugin left
# (pkg/kubelet/cm/devicemanager endpointStopGracePeriod), plus two node-status periods.
ENDPOINT_GRACE = 5 * 60 + 20


def stray_plugin(node: str) -> dict[str, Any]:
    """A device plugin run by hand on a DRA node, as a node moved from the device plugin to DRA
    had one: fake inf2.xlarge, one aws.amazon.com/neuron device."""
    command = ["neuron-device-plugin", "--fake-instance-type", "inf2.xlarge", "--http-port", "0"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "stray-device-plugin"},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 2,
            "tolerations": [{"operator": "Exists"}],
            "containers": [
                {
                    "name": "plugin",
                    "image": IMAGE,
                    "imagePullPolicy": PULL_POLICY,
                    "command": [*command, "--pod-resources-socket", ""],
                    "volumeMounts": [{"name": "dp", "mountPath": PLUGIN_DIR}],
                }
            ],
            "volumes": [{"name": "dp", "hostPath": {"path": PLUGIN_DIR}}],
        },
    }


def test_a_node_that_ran_a_device_plugin_starts_such_pods_after_the_kubelets_grace(
    inf2: Claims,
) -> None:
    """docs/dra.md, "A node that ran the device plugin": the kubelet keeps the allocations of a
    device-plugin pod that is gone until someone lists its PodResources, and five minutes after
    the plugin left it refused every container asking for aws.amazon.com/neuron through DRA
    ("endpoint not found in cache for a registered resource"). The driver's lists prevent it."""
    core, node = inf2.cluster.core, inf2.node
    core.create_namespaced_pod(inf2.namespace, stray_plugin(node))

    def offered() -> bool:
        allocatable = core.read_node(node).status.allocatable or {}
        return allocatable.get(NEURON) == "1"

    wait_for("the stray plugin's device offered", offered, 120)
    inf2.resource_pod("holder", NEURON, 1)  # through the plugin: the node has the capacity
    inf2.running("holder")
    assert (
        inf2.cluster.core.read_namespaced_pod(
            "holder", inf2.namespace
        ).status.extended_resource_claim_status
        is None
    ), "holder went through DRA, not the plugin"
    inf2.delete("holder", "stray-device-plugin")
    time.sleep(ENDPOINT_GRACE)

    inf2.resource_pod("after", NEURON, 1)
    inf2.running("after")
    assert inf2.claim_name("after")
