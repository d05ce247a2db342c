"""What the driver tells the kubelet about each device's health (health.py, pure part): every
whole device of the node, and every core set or device set a prepared claim holds, Unhealthy
exactly when a device under it is."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from neuron_k8s.dra.health import Health, devices_under, report
from neuron_k8s.topology import Rule, Shape

TRN1 = Shape(16, 2, Rule.ALIGNED, "trn1.32xlarge")
INF2 = Shape(12, 2, Rule.RING, "inf2.48xlarge")


def health_of(shape: Shape, names: list[str], unhealthy: frozenset[int] | None) -> dict[str, str]:
    return {r.device: r.health.name for r in report(shape, names, unhealthy)}


def test_every_whole_device_of_the_node_is_reported_healthy_when_none_failed() -> None:
    assert health_of(TRN1, [], frozenset()) == {f"neurondevice{i}": "HEALTHY" for i in range(16)}


def test_an_unhealthy_device_is_reported_unhealthy_with_a_message_naming_it() -> None:
    (three,) = [r for r in report(INF2, [], frozenset({3})) if r.device == "neurondevice3"]
    assert three.health is Health.UNHEALTHY
    assert three.message.startswith("neurondevice3 failed the driver's health check")
    others = [r for r in report(INF2, [], frozenset({3})) if r.device != "neurondevice3"]
    assert {r.health for r in others} == {Health.HEALTHY}
    assert {r.message for r in others} == {""}


def test_a_prepared_core_set_on_an_unhealthy_device_is_unhealthy_and_names_that_device() -> None:
    got = {r.device: r for r in report(INF2, ["neuroncores5-6", "neuroncores8-9"], frozenset({3}))}
    # cores 5 and 6 lie on devices 2 and 3; cores 8 and 9 on device 4
    assert got["neuroncores5-6"].health is Health.UNHEALTHY
    assert "lies on neurondevice3" in got["neuroncores5-6"].message
    assert got["neuroncores8-9"].health is Health.HEALTHY


def test_a_prepared_device_set_holding_an_unhealthy_device_is_unhealthy() -> None:
    got = health_of(INF2, ["neurondevices2-3", "neurondevices4-5"], frozenset({3}))
    assert got["neurondevices2-3"] == "UNHEALTHY"
    assert got["neurondevices4-5"] == "HEALTHY"


def test_names_the_driver_does_not_know_or_off_the_node_are_unknown() -> None:
    names = ["gpu0", "neurondevice12", "neuroncores23-24", "neurondevices10-12", "neurondevices3-2"]
    got = health_of(INF2, names, frozenset())
    assert {n: got[n] for n in names} == dict.fromkeys(names, "UNKNOWN")


def test_without_a_health_source_every_device_is_unknown() -> None:
    got = health_of(INF2, ["neuroncores0-1"], None)
    assert set(got.values()) == {"UNKNOWN"}
    assert len(got) == 13


def test_each_name_is_reported_once_whole_devices_first() -> None:
    names = [r.device for r in report(INF2, ["neurondevice1", "neuroncores0-1"], frozenset())]
    assert names == [f"neurondevice{i}" for i in range(12)] + ["neuroncores0-1"]


@given(
    first=st.integers(0, 23),
    count=st.integers(1, 24),
    unhealthy=st.frozensets(st.integers(0, 11), max_size=12),
)
def test_a_core_set_is_unhealthy_exactly_when_one_of_its_cores_is_on_an_unhealthy_device(
    first: int, count: int, unhealthy: frozenset[int]
) -> None:
    last = min(first + count, INF2.cores) - 1
    name = f"neuroncores{first}-{last}"
    assert devices_under(INF2, name) == {c // 2 for c in range(first, last + 1)}
    expected = "UNHEALTHY" if {c // 2 for c in range(first, last + 1)} & unhealthy else "HEALTHY"
    assert health_of(INF2, [name], unhealthy)[name] == expected
