"""The slice publisher against the API stand-in, one sync at a time: what it creates, replaces
and deletes, and the pool generation it writes."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from dra_harness import NODE
from fake_api import DRIVER, SLICES, FakeApi
from neuron_k8s.dra.devices import Versions, chunked, devices, slices, slices_of
from neuron_k8s.dra.partitions import contents, is_core_set
from neuron_k8s.dra.publisher import SlicePublisher
from neuron_k8s.kube import KubeClient
from neuron_k8s.topology import shape_for

VERSIONS = Versions("0.1.0", "fake")
SHAPE = shape_for("trn1.32xlarge")


@pytest.fixture
def api() -> Iterator[FakeApi]:
    a = FakeApi().start()
    yield a
    a.stop()


def publisher(api: FakeApi) -> SlicePublisher:
    return SlicePublisher(KubeClient.for_url(api.url), DRIVER, NODE, "uid-node", interval=60)


def healthy_but(*unhealthy: int) -> list[dict[str, Any]]:
    """Slice contents: the whole devices but the unhealthy ones."""
    return chunked(devices(SHAPE, NODE, VERSIONS, frozenset(unhealthy)))


def seed(
    api: FakeApi, generation: int, unhealthy: tuple[int, ...] = (), per_slice: int = 128
) -> None:
    """Slices another instance of the driver wrote earlier."""
    client = KubeClient.for_url(api.url)
    whole = devices(SHAPE, NODE, VERSIONS, frozenset(unhealthy))
    for body in slices(NODE, DRIVER, whole, generation, per_slice):
        client.post(SLICES, body)


def partitioned_but(*unhealthy: int) -> list[dict[str, Any]]:
    """Slice contents with core partitions (a counter slice, then device slices), unhealthy
    devices unpublished."""
    return contents(SHAPE, NODE, VERSIONS, frozenset(unhealthy))


def partitioned(api: FakeApi) -> SlicePublisher:
    """A publisher that has synced core partitions once, whole devices its fallback."""
    p = publisher(api)
    p.publish(partitioned_but(), healthy_but())
    p.sync()
    return p


def generations(api: FakeApi) -> set[int]:
    return {s["spec"]["pool"]["generation"] for s in api.node_slices(NODE)}


def test_nothing_is_written_before_the_devices_are_known(api: FakeApi) -> None:
    p = publisher(api)
    p.sync()
    assert api.node_slices(NODE) == []
    assert not p.published.is_set()


def test_the_first_sync_creates_the_slice_and_says_it_is_published(api: FakeApi) -> None:
    p = publisher(api)
    p.publish(healthy_but())
    p.sync()
    assert len(api.published_devices(NODE)) == 16
    assert p.published.is_set()


def test_a_change_of_devices_replaces_the_slice_in_a_newer_generation(api: FakeApi) -> None:
    p = publisher(api)
    p.publish(healthy_but())
    p.sync()
    (before,) = generations(api)
    p.publish(healthy_but(3))
    p.sync()
    assert "neurondevice3" not in api.published_devices(NODE)
    (after,) = generations(api)
    assert after > before


def test_publishing_the_same_devices_again_writes_nothing(api: FakeApi) -> None:
    p = publisher(api)
    p.publish(healthy_but())
    p.sync()
    version = api.node_slices(NODE)[0]["metadata"]["resourceVersion"]
    p.publish(healthy_but())
    p.sync()
    assert api.node_slices(NODE)[0]["metadata"]["resourceVersion"] == version


def test_slices_another_instance_left_with_the_same_devices_are_kept(api: FakeApi) -> None:
    seed(api, generation=7)
    versions = {s["metadata"]["resourceVersion"] for s in api.node_slices(NODE)}
    p = publisher(api)
    p.publish(healthy_but())
    p.sync()
    assert {s["metadata"]["resourceVersion"] for s in api.node_slices(NODE)} == versions
    assert p.published.is_set()


def test_a_restarted_driver_writes_a_generation_newer_than_any_it_finds(api: FakeApi) -> None:
    seed(api, generation=7, unhealthy=(3,))
    p = publisher(api)
    p.publish(healthy_but())  # its own count starts at 1
    p.sync()
    assert generations(api) == {8}
    assert len(api.published_devices(NODE)) == 16


def test_the_generation_keeps_rising_after_a_restart(api: FakeApi) -> None:
    seed(api, generation=7, unhealthy=(3,))
    p = publisher(api)
    p.publish(healthy_but())
    p.sync()
    p.publish(healthy_but(5))
    p.sync()
    assert generations(api) == {9}


def test_slices_the_pool_no_longer_needs_are_deleted(api: FakeApi) -> None:
    seed(api, generation=2, per_slice=5)  # four slices of an earlier layout
    p = publisher(api)
    p.publish(healthy_but())
    p.sync()
    (only,) = api.node_slices(NODE)
    assert len(only["spec"]["devices"]) == 16
    assert only["spec"]["pool"]["resourceSliceCount"] == 1
    assert only["spec"]["pool"]["generation"] == 3


def test_a_slice_edited_by_someone_else_is_put_back(api: FakeApi) -> None:
    p = publisher(api)
    p.publish(healthy_but())
    p.sync()
    (name,) = api.slices
    edited = copy.deepcopy(api.slices[name])
    edited["spec"]["devices"] = edited["spec"]["devices"][:2]
    api.slices[name] = edited
    p.sync()
    assert len(api.published_devices(NODE)) == 16


def test_slices_of_other_nodes_and_drivers_are_left_alone(api: FakeApi) -> None:
    client = KubeClient.for_url(api.url)
    for body in slices_of("node-b", DRIVER, healthy_but(), 1) + slices(
        NODE, "gpu.example.com", [], 1
    ):
        client.post(SLICES, body)
    p = publisher(api)
    p.publish(healthy_but())
    p.sync()
    p.remove_all()
    assert len(api.published_devices("node-b")) == 16
    assert len(api.node_slices(NODE, "gpu.example.com")) == 1
    assert api.node_slices(NODE) == []


def test_remove_all_deletes_every_slice_of_the_node(api: FakeApi) -> None:
    seed(api, generation=1, per_slice=5)
    publisher(api).remove_all()
    assert api.node_slices(NODE) == []


# --- core partitions and the API server's feature gate ---
def test_core_partitions_are_written_with_their_counters_when_the_api_server_keeps_them(
    api: FakeApi,
) -> None:
    partitioned(api)
    written = api.node_slices(NODE)
    assert len(written) == len(partitioned_but())
    assert written[0]["spec"]["sharedCounters"]
    assert any(is_core_set(name) for name in api.published_devices(NODE))


def test_without_counters_on_the_api_server_only_whole_devices_are_published(
    api: FakeApi,
) -> None:
    api.keeps_counters = False
    p = partitioned(api)
    assert api.published_devices(NODE) == [f"neurondevice{i}" for i in range(16)]
    assert not any(s["spec"].get("sharedCounters") for s in api.node_slices(NODE))
    assert p.published.is_set()


def test_the_counter_probe_is_a_dry_run_of_a_counter_slice_and_a_device_slice(
    api: FakeApi,
) -> None:
    partitioned(api)
    dry = [path for method, path in api.requests if method == "POST" and "dryRun=All" in path]
    assert len(dry) == 2
    assert not any("probe" in name for name in api.slices)


def test_the_api_server_is_probed_once_not_at_every_sync(api: FakeApi) -> None:
    p = partitioned(api)
    p.publish(partitioned_but(2), healthy_but(2))
    p.sync()
    dry = [path for method, path in api.requests if "dryRun=All" in path]
    assert len(dry) == 2


def test_a_health_change_rewrites_the_partitioned_slices_in_a_newer_generation(
    api: FakeApi,
) -> None:
    p = partitioned(api)
    (before,) = generations(api)
    p.publish(partitioned_but(6), healthy_but(6))
    p.sync()
    names = api.published_devices(NODE)
    assert "neurondevice6" not in names and "neuroncores12-13" not in names
    assert generations(api) == {before + 1}


def test_turning_core_partitions_off_goes_back_to_one_slice_of_whole_devices(
    api: FakeApi,
) -> None:
    p = partitioned(api)
    p.publish(healthy_but())
    p.sync()
    (only,) = api.node_slices(NODE)
    assert len(only["spec"]["devices"]) == 16
    assert "sharedCounters" not in only["spec"]
