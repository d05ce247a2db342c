"""`pods`: a row per container set, with node, cores, devices, path and age."""

from datetime import UTC, datetime

from fleetdata import (
    claim,
    claim_pod,
    container,
    dp_node,
    dra_node,
    garbage_pod,
    pod,
    recorded_pod,
    slices,
)
from neuron_k8s.fleet.model import node_views
from neuron_k8s.fleet.podlist import age, pod_rows

NOW = datetime(2026, 12, 6, 15, 5, tzinfo=UTC)  # five minutes after fleetdata.CREATED
CORE = "aws.amazon.com/neuroncore"


def rows(nodes, pods, claims=(), slices_=()):
    views = node_views(nodes, pods, claims, slices_)
    return pod_rows(pods, views, claims, "neuron.aws.com", NOW)


def test_a_device_plugin_pod_has_a_row_per_container_with_its_cores_and_age() -> None:
    p = recorded_pod("p", "a", "trn1.32xlarge", [("x", CORE, [0, 1]), ("y", CORE, [2])])
    got = [r.cells() for r in rows([dp_node("a", "trn1.32xlarge")], [p])]
    assert got == [
        ("team", "p", "Running", "a", "x", f"2 {CORE}", "0-1", "0", "device-plugin", "5m"),
        ("team", "p", "Running", "a", "y", f"1 {CORE}", "2", "1", "device-plugin", "5m"),
    ]


def test_a_dra_pod_has_the_devices_its_claim_was_given() -> None:
    got = rows(
        [dra_node("d", "trn1.32xlarge")],
        [claim_pod("p", "d", "c1")],
        [claim("c1", "d", ["neuroncores0-3"], "p")],
        slices("d", "trn1.32xlarge"),
    )
    assert [(r.container, r.asks, r.cores, r.path) for r in got] == [
        ("app", "neuroncores0-3", (0, 1, 2, 3), "dra")
    ]


def test_a_pending_pod_shows_what_it_asks_and_holds_nothing() -> None:
    p = pod("w", [container("c", CORE, 3)], phase="Pending")
    (r,) = rows([dp_node("a", "inf2.xlarge")], [p])
    assert r.cells()[2:8] == ("Pending", "-", "c", f"3 {CORE}", "-", "-")


def test_a_pod_without_neuron_requests_or_claims_is_not_listed() -> None:
    assert rows([dp_node("a", "inf2.xlarge")], [pod("web", [container("c")], "a")]) == []


def test_a_pod_with_an_unreadable_record_is_shown_as_unreadable() -> None:
    (r,) = rows([dp_node("a", "inf2.xlarge")], [garbage_pod("bad", "a")])
    assert r.cells()[6] == "unreadable" and "not readable" in r.problem


def test_ages_read_as_kubectls() -> None:
    assert [age(s) for s in (5, 119, 120, 7199, 7200, 172800, None)] == [
        "5s",
        "119s",
        "2m",
        "119m",
        "2h",
        "2d",
        "<unknown>",
    ]
