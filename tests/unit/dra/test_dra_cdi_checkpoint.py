"""The files a prepared claim leaves on the node: its CDI spec, which the container runtime
reads, and the driver's checkpoint, which a restarted driver answers from."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from neuron_k8s.dra.cdi import CdiSpecs, Edit
from neuron_k8s.dra.checkpoint import Checkpoint, Prepared, PreparedDevice

DRIVER = "neuron.aws.com"
RECORD = Prepared(
    "default",
    "claim-1",
    "node-a",
    (
        PreparedDevice("gpus", "neurondevice4", ("neuron.aws.com/claim=u1-gpus",)),
        PreparedDevice("gpus", "neurondevice5", ()),
    ),
)


def spec(specs: CdiSpecs, uid: str) -> dict[str, object]:
    with open(specs.path(uid)) as f:
        return dict(json.load(f))


# --- CDI ---
def test_a_cdi_spec_has_one_device_per_request_setting_its_visible_cores(tmp_path: Path) -> None:
    specs = CdiSpecs(str(tmp_path), DRIVER)
    specs.write("u1", [Edit("gpus", (8, 9, 10, 11)), Edit("extra", (0, 1))])
    assert spec(specs, "u1") == {
        "cdiVersion": "0.6.0",
        "kind": "neuron.aws.com/claim",
        "devices": [
            {
                "name": "u1-gpus",
                "containerEdits": {"env": ["NEURON_RT_VISIBLE_CORES=8,9,10,11"]},
            },
            {"name": "u1-extra", "containerEdits": {"env": ["NEURON_RT_VISIBLE_CORES=0,1"]}},
        ],
    }


def test_a_cdi_device_id_is_the_kind_and_the_device_name(tmp_path: Path) -> None:
    assert CdiSpecs(str(tmp_path), DRIVER).device_id("u1", "gpus") == "neuron.aws.com/claim=u1-gpus"


def test_the_spec_file_is_named_for_the_driver_and_the_claim(tmp_path: Path) -> None:
    specs = CdiSpecs(str(tmp_path), DRIVER)
    assert specs.path("u1") == os.path.join(str(tmp_path), "neuron.aws.com-u1.json")


def test_real_mode_edits_add_the_device_nodes_of_the_request(tmp_path: Path) -> None:
    specs = CdiSpecs(str(tmp_path), DRIVER)
    specs.write("u1", [Edit("gpus", (0, 1), ("/dev/neuron0",))])
    edits = spec(specs, "u1")["devices"][0]["containerEdits"]  # type: ignore[index]
    assert edits["deviceNodes"] == [{"path": "/dev/neuron0"}]


def test_a_logical_core_size_reaches_the_container_as_neuron_logical_nc_config(
    tmp_path: Path,
) -> None:
    specs = CdiSpecs(str(tmp_path), DRIVER)
    specs.write("u1", [Edit("gpus", tuple(range(8)), (), 1)])
    edits = spec(specs, "u1")["devices"][0]["containerEdits"]  # type: ignore[index]
    assert edits["env"] == ["NEURON_RT_VISIBLE_CORES=0,1,2,3,4,5,6,7", "NEURON_LOGICAL_NC_CONFIG=1"]


def test_writing_a_spec_again_replaces_it_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    specs = CdiSpecs(str(tmp_path), DRIVER)
    specs.write("u1", [Edit("gpus", (0,))])
    specs.write("u1", [Edit("gpus", (2,))])
    assert os.listdir(str(tmp_path)) == ["neuron.aws.com-u1.json"]
    assert "NEURON_RT_VISIBLE_CORES=2" in json.dumps(spec(specs, "u1"))


def test_the_cdi_root_is_created_when_missing(tmp_path: Path) -> None:
    specs = CdiSpecs(os.path.join(str(tmp_path), "var", "run", "cdi"), DRIVER)
    specs.write("u1", [Edit("gpus", (0,))])
    assert os.path.exists(specs.path("u1"))


def test_removing_a_spec_twice_is_not_an_error(tmp_path: Path) -> None:
    specs = CdiSpecs(str(tmp_path), DRIVER)
    specs.write("u1", [Edit("gpus", (0,))])
    specs.remove("u1")
    specs.remove("u1")
    assert not os.path.exists(specs.path("u1"))


def test_the_claims_with_specs_are_those_of_this_driver_only(tmp_path: Path) -> None:
    specs = CdiSpecs(str(tmp_path), DRIVER)
    specs.write("u1", [Edit("a", (0,))])
    specs.write("u2", [Edit("a", (1,))])
    (tmp_path / "nvidia.com-gpu.json").write_text("{}")  # another vendor's spec
    assert specs.claims() == {"u1", "u2"}


def test_a_missing_cdi_root_has_no_claims(tmp_path: Path) -> None:
    assert CdiSpecs(os.path.join(str(tmp_path), "absent"), DRIVER).claims() == set()


# --- checkpoint ---
def test_a_prepared_claim_survives_a_reload(tmp_path: Path) -> None:
    path = os.path.join(str(tmp_path), "state", "checkpoint.json")
    Checkpoint(path).put("u1", RECORD)
    again = Checkpoint(path)
    assert again.get("u1") == RECORD
    assert again.uids() == {"u1"}


def test_a_dropped_claim_stays_dropped_after_a_reload(tmp_path: Path) -> None:
    path = os.path.join(str(tmp_path), "checkpoint.json")
    first = Checkpoint(path)
    first.put("u1", RECORD)
    first.put("u2", RECORD)
    first.drop("u1")
    assert Checkpoint(path).uids() == {"u2"}


def test_dropping_an_unknown_claim_is_not_an_error(tmp_path: Path) -> None:
    cp = Checkpoint(os.path.join(str(tmp_path), "checkpoint.json"))
    cp.drop("nope")
    assert cp.get("nope") is None


def test_a_missing_checkpoint_starts_empty(tmp_path: Path) -> None:
    assert Checkpoint(os.path.join(str(tmp_path), "checkpoint.json")).uids() == set()


@pytest.mark.parametrize(
    "text",
    [
        '{"version": 1, "claims": {"u1": {"namespace": "default", "na',  # cut short
        "\x00\x00\x00",
        '{"version": 2, "claims": {}}',
        "[]",
        "null",
        '{"version": 1, "claims": {"u1": {"namespace": "default"}}}',
        '{"version": 1, "claims": ["u1"]}',
    ],
    ids=[
        "truncated",
        "binary",
        "other-version",
        "a-list",
        "null",
        "entry-missing-fields",
        "claims-not-a-map",
    ],
)
def test_an_unreadable_checkpoint_starts_empty(tmp_path: Path, text: str) -> None:
    path = os.path.join(str(tmp_path), "checkpoint.json")
    with open(path, "w") as f:
        f.write(text)
    cp = Checkpoint(path)
    assert cp.uids() == set()
    cp.put("u1", RECORD)  # and it is usable again
    assert Checkpoint(path).get("u1") == RECORD
