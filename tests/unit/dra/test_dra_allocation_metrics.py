"""The DRA driver's allocation metrics (docs/metrics.md): the cores of each prepared claim,
counted for the containers of the pod it is reserved for, and the node's free, held and
unhealthy counts, under the names the device plugin uses too. Labels come from the claim and
pod watches, never from an API call."""

from __future__ import annotations

from typing import Any

from dra_harness import NODE, NODE_TYPE, FakeApi, FakeKubelet, make_claim, prepare, unprepare
from driver_checks import StartDriver
from neuron_k8s.dra.checkpoint import Prepared, PreparedDevice
from neuron_k8s.dra.devicesets import DeviceSet
from neuron_k8s.dra.partitions import CoreSet
from neuron_k8s.dra.podclaims import claim_holders, container_cores, device_cores
from neuron_k8s.dra.prepare import WHOLE_CLAIM
from neuron_k8s.topology import shape_for
from waiting import wait_until

SHAPE = shape_for(NODE_TYPE)  # 16 devices x 2 cores


def pod(
    name: str,
    claims: dict[str, str],
    containers: dict[str, list[dict[str, str]]],
    generated: dict[str, str] | None = None,
    extended: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A pod on NODE: `claims` pod claim name -> ResourceClaim name (or "" for one made from a
    template, named in `generated`), `containers` name -> its claim references."""
    status: dict[str, Any] = {
        "resourceClaimStatuses": [
            {"name": k, "resourceClaimName": v} for k, v in (generated or {}).items()
        ]
    }
    if extended:
        status["extendedResourceClaimStatus"] = extended
    return {
        "metadata": {"name": name, "namespace": "default", "uid": f"pod-uid-{name}"},
        "spec": {
            "nodeName": NODE,
            "resourceClaims": [
                {"name": k, "resourceClaimName": v} if v else {"name": k} for k, v in claims.items()
            ],
            "containers": [
                {"name": c, "resources": {"claims": refs}} for c, refs in containers.items()
            ],
        },
        "status": status,
    }


BY_REQUEST = {"train": 0b11, "eval": 0b1100}


def test_a_container_referencing_the_whole_claim_holds_every_request() -> None:
    p = pod("p", {"neuron": "c1"}, {"main": [{"name": "neuron"}]})
    assert container_cores(p, "c1", BY_REQUEST) == {"main": 0b1111}


def test_a_container_naming_a_request_holds_only_that_request() -> None:
    refs = {"a": [{"name": "neuron", "request": "train"}], "b": [{"name": "neuron"}], "c": []}
    p = pod("p", {"neuron": "c1"}, refs)
    assert container_cores(p, "c1", BY_REQUEST) == {"a": 0b11, "b": 0b1111}


def test_a_claim_made_from_a_template_is_found_through_the_pod_status() -> None:
    p = pod("p", {"neuron": ""}, {"main": [{"name": "neuron"}]}, {"neuron": "p-neuron-x1"})
    assert container_cores(p, "p-neuron-x1", BY_REQUEST) == {"main": 0b1111}
    assert container_cores(p, "c1", BY_REQUEST) == {}


def test_an_extended_resource_claim_goes_to_the_containers_the_scheduler_mapped() -> None:
    extended = {
        "resourceClaimName": "p-extended-resources-x",
        "requestMappings": [
            {
                "containerName": "main",
                "resourceName": "aws.amazon.com/neuron",
                "requestName": "eval",
            }
        ],
    }
    p = pod("p", {}, {"main": []}, extended=extended)
    assert container_cores(p, "p-extended-resources-x", BY_REQUEST) == {"main": 0b1100}


def test_device_names_give_their_cores_in_the_nodes_numbering() -> None:
    assert device_cores(SHAPE, "neurondevice3") == 0b11 << 6
    assert device_cores(SHAPE, CoreSet(5, 1).name) == 1 << 5
    assert device_cores(SHAPE, DeviceSet(4, 4).name) == 0xFF << 8
    assert device_cores(SHAPE, "neurondevice99") == 0


def test_a_claim_whose_pod_the_watch_has_not_shown_counts_for_the_pod_alone() -> None:
    record = Prepared(
        "default",
        "c1",
        NODE,
        (
            PreparedDevice("r", "neurondevice0", ()),
            PreparedDevice(WHOLE_CLAIM, "neurondevice0", ()),
        ),
    )
    claim = make_claim("c1", {"r": [0]}, NODE)
    holders = claim_holders(SHAPE, record, claim, {})
    assert [(h.namespace, h.pod, h.container, h.cores) for h in holders] == [
        ("default", "pod-c1", "", 0b11)
    ]


def test_a_prepared_claim_is_reported_for_the_container_that_uses_it(
    kubelet: FakeKubelet, start_driver: StartDriver, api: FakeApi
) -> None:
    api.add_pod(pod("pod-c1", {"neuron": "c1"}, {"main": [{"name": "neuron"}], "side": []}))
    driver = start_driver()
    claim = api.add_claim(make_claim("c1", {"gpus": [4, 5, 6, 7]}, NODE))
    prepare(kubelet.stub(), claim)
    labels = {"namespace": "default", "pod": "pod-c1", "node": NODE, "path": "dra"}
    read = driver.metrics.registry.get_sample_value

    wait_until(lambda: read("neuron_container_cores", {**labels, "container": "main"}) == 8, 5)
    assert read("neuron_container_devices", {**labels, "container": "main"}) == 4
    assert read("neuron_container_cores", {**labels, "container": "side"}) is None
    node = {"node": NODE, "instance_type": NODE_TYPE, "path": "dra"}
    assert read("neuron_node_cores", {**node, "state": "held"}) == 8
    assert read("neuron_node_largest_free_run", {**node, "unit": "device"}) == 8

    unprepare(kubelet.stub(), claim)
    assert read("neuron_container_cores", {**labels, "container": "main"}) is None
    assert read("neuron_node_cores", {**node, "state": "free"}) == 32


def test_prepare_errors_are_reported_as_zero_before_any(start_driver: StartDriver) -> None:
    driver = start_driver()
    value = driver.metrics.registry.get_sample_value(
        "neuron_dra_driver_prepares_total", {"outcome": "error"}
    )
    assert value == 0
