"""The hardware-error record (neuron_k8s/hardwareerrors.py): a device with an error stays
unhealthy for the rest of the boot, whatever its source does and across restarts; a reboot
clears it, and so does deleting the state file; a bad state file never stops the process."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
from neuron_k8s.hardwareerrors import Fault, HardwareErrors, Key

DEVICES = 16
LINE = "Dec  6 12:00:00 host kernel: NEURON_HW_ERR={kind} nd-id={device} action=TERMINATE"


class Node:
    """A node's kernel-message file, boot id and state file."""

    def __init__(self, root: Path) -> None:
        self.messages = root / "kern.log"
        self.messages.write_text("")
        self.boot_id = root / "boot_id"
        self.boot_id.write_text("boot-1\n")
        self.state = root / "state" / "hardware-errors.json"
        self.new: list[tuple[Key, Fault]] = []

    def log(self, line: str) -> None:
        with self.messages.open("a") as f:
            f.write(line + "\n")

    def error(self, device: int | str, kind: str = "HBM_UNCORRECTABLE_ERROR") -> None:
        self.log(LINE.format(kind=kind, device=device))

    def start(self, devices: int = DEVICES) -> HardwareErrors:
        """A process of the plugin or the driver starting on this node."""
        return HardwareErrors(
            str(self.messages),
            devices,
            str(self.state),
            str(self.boot_id),
            lambda key, fault: self.new.append((key, fault)),
            clock=lambda: 1700000000.0,
        )

    def reboot(self) -> None:
        self.boot_id.write_text("boot-2\n")
        self.messages.write_text("")


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return Node(tmp_path)


def test_an_error_line_makes_its_device_unhealthy(node: Node) -> None:
    node.error(3)
    assert node.start().read() == {3: "HBM_UNCORRECTABLE_ERROR"}


def test_a_line_naming_no_device_makes_every_device_of_the_shape_unhealthy(node: Node) -> None:
    node.log("kernel: NEURON_HW_ERR=DMA_ERROR affecting neuron devices")
    assert node.start(devices=4).read() == {d: "DMA_ERROR" for d in range(4)}


def test_a_device_the_node_does_not_have_is_ignored(node: Node) -> None:
    node.error(20)
    errors = node.start().read()
    assert errors == {} and node.new == []


def test_the_device_stays_unhealthy_when_its_line_leaves_the_source(node: Node) -> None:
    node.error(3)
    errors = node.start()
    assert errors.read() == {3: "HBM_UNCORRECTABLE_ERROR"}
    node.messages.write_text("")  # rotated away, or the ring buffer wrapped
    assert errors.read() == {3: "HBM_UNCORRECTABLE_ERROR"}


def test_the_first_error_of_a_device_is_kept_and_reported_once(node: Node) -> None:
    node.error(3, "DMA_ERROR")
    errors = node.start()
    errors.read()
    node.error(3, "NC_UNCORRECTABLE_ERROR")
    assert errors.read() == {3: "DMA_ERROR"}
    assert [(key, fault.kind) for key, fault in node.new] == [(3, "DMA_ERROR")]
    assert node.new[0][1].since == 1700000000.0
    assert "nd-id=3" in node.new[0][1].message


def test_a_restart_in_the_same_boot_keeps_the_record_without_reporting_it_again(
    node: Node,
) -> None:
    node.error(3)
    node.start().read()
    node.messages.write_text("")
    node.new.clear()
    assert node.start().read() == {3: "HBM_UNCORRECTABLE_ERROR"}
    assert node.new == []


def test_a_restart_does_not_report_again_a_line_still_in_the_source(node: Node) -> None:
    node.error(3)
    first = node.start()
    first.read()
    first.close()
    node.new.clear()
    again = node.start()
    assert again.read() == {3: "HBM_UNCORRECTABLE_ERROR"}
    assert node.new == []


def test_the_state_file_holds_the_boot_id_and_each_error(node: Node) -> None:
    node.error(3)
    node.start().read()
    doc = json.loads(node.state.read_text())
    assert doc["bootId"] == "boot-1"
    (entry,) = doc["errors"]
    assert (entry["device"], entry["kind"], entry["since"]) == (
        3,
        "HBM_UNCORRECTABLE_ERROR",
        1700000000.0,
    )
    assert [p.name for p in node.state.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_the_state_file_is_not_rewritten_while_nothing_changes(node: Node) -> None:
    node.error(3)
    errors = node.start()
    errors.read()
    inode = os.stat(node.state).st_ino
    for _ in range(3):
        errors.read()
    assert os.stat(node.state).st_ino == inode


def test_a_reboot_clears_the_record(node: Node, caplog: pytest.LogCaptureFixture) -> None:
    node.error(3)
    node.start().read()
    node.reboot()
    with caplog.at_level(logging.INFO):
        errors = node.start()
        assert errors.read() == {}
    assert any("earlier boot discarded" in r.message for r in caplog.records)
    assert json.loads(node.state.read_text()) == {
        "version": 1,
        "bootId": "boot-2",
        "errors": [],
    }


def test_deleting_the_state_file_clears_the_record_though_the_line_is_still_read(
    node: Node,
) -> None:
    node.error(3)
    first = node.start()
    first.read()
    first.close()
    node.state.unlink()
    assert node.start().read() == {}


def test_deleting_the_position_too_reads_the_whole_source_again(node: Node) -> None:
    node.error(3)
    first = node.start()
    first.read()
    first.close()
    node.state.unlink()
    Path(str(node.state) + ".position").unlink()
    assert node.start().read() == {3: "HBM_UNCORRECTABLE_ERROR"}


def test_an_error_after_a_clearing_is_recorded(node: Node) -> None:
    node.error(3)
    first = node.start()
    first.read()
    first.close()
    node.state.unlink()
    node.error(5, "DMA_ERROR")
    assert node.start().read() == {5: "DMA_ERROR"}


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"[]", b'{"bootId": "boot-1", "errors": 7}', b"\x00\xff" * 50],
)
def test_a_garbage_state_file_warns_and_starts_from_the_whole_source(
    node: Node, caplog: pytest.LogCaptureFixture, content: bytes
) -> None:
    node.error(3)
    node.state.parent.mkdir(parents=True)
    node.state.write_bytes(content)
    with caplog.at_level(logging.WARNING):
        errors = node.start()
    assert errors.read() == {3: "HBM_UNCORRECTABLE_ERROR"}
    assert any("unreadable" in r.message for r in caplog.records)
    assert json.loads(node.state.read_text())["errors"][0]["device"] == 3


def test_entries_of_the_state_file_that_are_not_errors_are_skipped(node: Node) -> None:
    node.state.parent.mkdir(parents=True)
    entries = [
        {"device": 2, "kind": "DMA_ERROR", "since": 1.0, "message": "m"},
        {"device": "3", "kind": "DMA_ERROR", "since": 1.0},
        {"device": 4, "kind": "FOO", "since": 1.0},
        {"device": True, "kind": "DMA_ERROR", "since": 1.0},
        {"device": 5, "kind": "DMA_ERROR"},
        "x",
    ]
    node.state.write_text(json.dumps({"bootId": "boot-1", "errors": entries}))
    assert node.start().read() == {2: "DMA_ERROR"}


def test_an_unwritable_state_directory_keeps_the_record_in_memory(
    node: Node, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = node.state.parent
    blocker.write_text("a file where the directory should be")
    node.error(3)
    errors = node.start()
    with caplog.at_level(logging.WARNING):
        assert errors.read() == {3: "HBM_UNCORRECTABLE_ERROR"}
        assert errors.read() == {3: "HBM_UNCORRECTABLE_ERROR"}
    assert sum("not written" in r.message for r in caplog.records) == 1


def test_a_missing_source_keeps_the_restored_record(node: Node) -> None:
    node.error(3)
    node.start().read()
    node.messages.unlink()
    errors = node.start()
    assert [errors.read() for _ in range(3)] == [{3: "HBM_UNCORRECTABLE_ERROR"}] * 3
