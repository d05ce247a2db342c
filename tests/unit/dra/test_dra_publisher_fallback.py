"""The slice publisher where the API server refuses or drops what it sends (docs/dra.md, "Core
partitions" and "Device health"): it falls back to the next offer (offers.py) with one log line
and one Warning Event on the Node, never retries a refusal forever, and never leaves the node
with nothing published; and device taints, whose `timeAdded` the API server sets."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from dra_harness import NODE
from fake_api import DRIVER, FakeApi
from neuron_k8s.dra.devices import Versions
from neuron_k8s.dra.offers import offers
from neuron_k8s.dra.partitions import is_core_set
from neuron_k8s.dra.publisher import SlicePublisher
from neuron_k8s.kube import KubeClient
from neuron_k8s.topology import shape_for

VERSIONS = Versions("0.1.0", "fake")
SHAPE = shape_for("inf2.48xlarge")
WHOLE = [f"neurondevice{i}" for i in range(12)]


@pytest.fixture
def api() -> Iterator[FakeApi]:
    a = FakeApi().start()
    yield a
    a.stop()


def publisher(api: FakeApi) -> SlicePublisher:
    return SlicePublisher(KubeClient.for_url(api.url), DRIVER, NODE, "uid-node", interval=60)


def offer(p: SlicePublisher, unhealthy: dict[int, str] | None = None, parts: bool = True) -> None:
    p.publish(*offers(SHAPE, NODE, VERSIONS, unhealthy or {}, "powers" if parts else None))


def synced(api: FakeApi, unhealthy: dict[int, str] | None = None) -> SlicePublisher:
    p = publisher(api)
    offer(p, unhealthy)
    p.sync()
    return p


def taints(api: FakeApi) -> dict[str, list[dict[str, Any]]]:
    return {
        d["name"]: d["taints"]
        for s in api.node_slices(NODE)
        for d in s["spec"].get("devices") or []
        if d.get("taints")
    }


def taint_of(api: FakeApi, name: str) -> dict[str, Any]:
    (t,) = taints(api)[name]
    return t


# --- counters ---
def test_a_1_37_api_server_gets_core_partitions_and_no_event(api: FakeApi) -> None:
    synced(api)
    assert any(is_core_set(n) for n in api.published_devices(NODE))
    assert api.events == []


def test_dropped_counters_fall_back_to_whole_devices_with_one_warning_event_on_the_node(
    api: FakeApi,
) -> None:
    api.keeps_counters = False
    p = synced(api)
    assert api.published_devices(NODE) == WHOLE
    assert p.published.is_set()
    (event,) = api.events
    assert (event["type"], event["reason"]) == ("Warning", "NeuronCorePartitionsUnavailable")
    assert event["involvedObject"] == {
        "apiVersion": "v1",
        "kind": "Node",
        "name": NODE,
        "uid": "uid-node",
    }
    assert event["metadata"]["namespace"] == "default"


def test_the_fallback_is_said_in_one_error_line_naming_the_node_and_the_cause(
    api: FakeApi, caplog: pytest.LogCaptureFixture
) -> None:
    api.version_rules = "1.34"
    with caplog.at_level(logging.WARNING):
        p = synced(api)
        offer(p, {4: ""})
        p.sync()
        p.sync()
    (line,) = [r for r in caplog.records if "does not keep" in r.getMessage()]
    assert line.levelno == logging.ERROR
    fields = line.fields  # type: ignore[attr-defined]
    assert fields["node"] == NODE
    assert "must reference a counterSet defined in the ResourceSlice" in fields["cause"]


def test_a_1_34_api_server_that_refuses_counters_of_other_slices_gets_whole_devices(
    api: FakeApi,
) -> None:
    api.version_rules = "1.34"
    synced(api)
    assert api.published_devices(NODE) == WHOLE
    assert [e["reason"] for e in api.events] == ["NeuronCorePartitionsUnavailable"]


def test_a_refused_real_write_falls_back_at_once_instead_of_retrying(api: FakeApi) -> None:
    p = synced(api)  # the probe said yes
    api.version_rules = "1.34"  # and now the API server refuses
    offer(p, {4: ""})
    p.sync()
    assert api.published_devices(NODE) == WHOLE
    assert list(taints(api)) == ["neurondevice4"]  # the taints still kept
    assert [e["reason"] for e in api.events] == ["NeuronCorePartitionsUnavailable"]


def test_an_event_that_cannot_be_posted_only_costs_a_log_line(api: FakeApi) -> None:
    api.keeps_counters = False
    api.refuse_events = True
    p = synced(api)
    assert api.published_devices(NODE) == WHOLE
    assert p.published.is_set()


# --- taints ---
def test_an_unhealthy_device_is_published_tainted_with_its_core_sets(api: FakeApi) -> None:
    synced(api, {4: ""})
    tainted = set(taints(api))
    assert {"neurondevice4", "neuroncores8-8", "neuroncores7-8", "neurondevices3-4"} <= tainted
    assert "neurondevice3" not in tainted and "neuroncores6-7" not in tainted


def test_when_the_device_recovers_its_taints_go_in_a_newer_generation(api: FakeApi) -> None:
    p = synced(api, {4: ""})
    before = {s["spec"]["pool"]["generation"] for s in api.node_slices(NODE)}
    offer(p)
    p.sync()
    assert taints(api) == {}
    after = {s["spec"]["pool"]["generation"] for s in api.node_slices(NODE)}
    assert len(after) == 1 and min(after) > max(before)


def test_dropped_taints_unpublish_the_unhealthy_device_and_keep_core_partitions(
    api: FakeApi,
) -> None:
    api.keeps_taints = False
    synced(api, {4: ""})
    names = api.published_devices(NODE)
    assert "neurondevice4" not in names and "neuroncores8-9" not in names
    assert "neurondevice3" in names and "neuroncores6-7" in names
    assert [e["reason"] for e in api.events] == ["NeuronDeviceTaintsUnavailable"]


def test_without_counters_or_taints_the_unhealthy_device_is_simply_unpublished(
    api: FakeApi,
) -> None:
    api.keeps_counters = api.keeps_taints = False
    synced(api, {4: ""})
    assert api.published_devices(NODE) == [n for n in WHOLE if n != "neurondevice4"]
    assert sorted(e["reason"] for e in api.events) == [
        "NeuronCorePartitionsUnavailable",
        "NeuronDeviceTaintsUnavailable",
    ]


def test_taints_are_probed_only_once_a_device_is_unhealthy(api: FakeApi) -> None:
    api.keeps_taints = False
    p = synced(api)
    assert api.events == []
    offer(p, {1: ""})
    p.sync()
    assert [e["reason"] for e in api.events] == ["NeuronDeviceTaintsUnavailable"]


def test_the_time_the_api_server_gave_a_taint_causes_no_rewrite(api: FakeApi) -> None:
    p = synced(api, {4: ""})
    versions = {s["metadata"]["resourceVersion"] for s in api.node_slices(NODE)}
    p.sync()
    assert {s["metadata"]["resourceVersion"] for s in api.node_slices(NODE)} == versions


def test_a_taint_that_stays_keeps_its_time_when_the_slices_are_rewritten(api: FakeApi) -> None:
    p = publisher(api)
    offer(p, {4: ""}, parts=False)
    p.sync()
    (name,) = api.slices
    api.slices[name]["spec"]["devices"][4]["taints"][0]["timeAdded"] = "2026-11-30T08:00:00Z"
    offer(p, {4: "", 9: ""}, parts=False)
    p.sync()
    assert taint_of(api, "neurondevice4")["timeAdded"] == "2026-11-30T08:00:00Z"
    assert taint_of(api, "neurondevice9")["timeAdded"] != "2026-11-30T08:00:00Z"
