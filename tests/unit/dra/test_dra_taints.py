"""Device health through device taints (docs/dra.md, "Device health"): an unhealthy device
stays published with the taint `neuron.aws.com/unhealthy` (NoSchedule, or NoExecute when
asked by --unhealthy-taint-effect), the offers the publisher falls back through, and the
flags behind them."""

from __future__ import annotations

from typing import Any

import pytest
from neuron_k8s.dra.cli import parse_args
from neuron_k8s.dra.devices import Versions
from neuron_k8s.dra.offers import offers
from neuron_k8s.dra.taints import UNHEALTHY_KEY, label_value, unhealthy_taint
from neuron_k8s.topology import shape_for
from slice_rules import errors_1_37

NODE = "node-a"
VERSIONS = Versions("0.1.0", "fake")
TRN1 = shape_for("trn1.32xlarge")


def taints_by_name(contents: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    return {d["name"]: d.get("taints", []) for c in contents for d in c.get("devices", [])}


# --- the taint ---
def test_an_unhealthy_device_stays_published_with_a_noschedule_taint() -> None:
    best = offers(TRN1, NODE, VERSIONS, {3: ""})[0]
    taints = taints_by_name(best)
    assert taints["neurondevice3"] == [
        {"key": UNHEALTHY_KEY, "value": "true", "effect": "NoSchedule"}
    ]
    assert [n for n, t in taints.items() if t] == ["neurondevice3"]


def test_the_taint_says_the_reason_when_there_is_one() -> None:
    best = offers(TRN1, NODE, VERSIONS, {5: "device node gone"})[0]
    assert taints_by_name(best)["neurondevice5"][0]["value"] == "device_node_gone"


def test_noexecute_is_used_only_when_asked_for() -> None:
    best = offers(TRN1, NODE, VERSIONS, {2: ""}, effect="NoExecute")[0]
    assert taints_by_name(best)["neurondevice2"][0]["effect"] == "NoExecute"


def test_an_unknown_effect_is_refused() -> None:
    with pytest.raises(ValueError, match="NoSchedule, NoExecute"):
        unhealthy_taint("", "PreferNoSchedule")


@pytest.mark.parametrize(
    ("reason", "value"),
    [("", "true"), ("--", "true"), ("ECC error: uncorrectable", "ECC_error_uncorrectable")],
)
def test_a_reason_becomes_a_valid_label_value(reason: str, value: str) -> None:
    assert label_value(reason) == value


def test_a_long_reason_is_cut_to_63_characters() -> None:
    assert len(label_value("x" * 100)) == 63


def test_tainted_slices_pass_the_1_37_api_servers_validation() -> None:
    for contents in offers(TRN1, NODE, VERSIONS, {1: "bad", 7: ""}, "powers"):
        for c in contents:
            assert errors_1_37(c) == []


# --- the offers, best first ---
def test_with_every_device_healthy_there_is_one_offer_without_partitions() -> None:
    (only,) = offers(TRN1, NODE, VERSIONS)
    assert len(taints_by_name(only)) == 16


def test_an_unhealthy_device_is_tainted_first_and_unpublished_in_the_fallback() -> None:
    tainted, plain = offers(TRN1, NODE, VERSIONS, {3: ""})
    assert "neurondevice3" in taints_by_name(tainted)
    assert "neurondevice3" not in taints_by_name(plain)
    assert not any(taints_by_name(plain).values())


def test_with_partitions_the_offers_give_up_taints_before_counters() -> None:
    out = offers(TRN1, NODE, VERSIONS, {3: ""}, "powers")
    with_counters = [any("sharedCounters" in c for c in o) for o in out]
    with_taints = [any(taints_by_name(o).values()) for o in out]
    assert with_counters == [True, True, False, False]
    assert with_taints == [True, False, True, False]


# --- flags ---
def test_the_taint_effect_is_noschedule_by_default_and_can_come_from_the_environment() -> None:
    assert parse_args(["--node-name", "n1"], {}).unhealthy_taint_effect == "NoSchedule"
    env = {"NODE_NAME": "n1", "NEURON_DRA_UNHEALTHY_TAINT_EFFECT": "NoExecute"}
    assert parse_args([], env).unhealthy_taint_effect == "NoExecute"


def test_an_unknown_taint_effect_exits_2_naming_the_choices(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse_args(["--node-name", "n1", "--unhealthy-taint-effect", "Evict"], {})
    assert exit_.value.code == 2
    assert (
        "--unhealthy-taint-effect must be one of NoSchedule, NoExecute" in capsys.readouterr().err
    )


def test_core_set_sizes_default_to_powers_and_refuse_unknown_choices(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert parse_args(["--node-name", "n1"], {}).core_set_sizes == "powers"
    env = {"NODE_NAME": "n1", "NEURON_DRA_CORE_SET_SIZES": "all"}
    assert parse_args([], env).core_set_sizes == "all"
    with pytest.raises(SystemExit):
        parse_args(["--node-name", "n1", "--core-set-sizes", "most"], {})
    assert "--core-set-sizes must be one of all, powers" in capsys.readouterr().err
