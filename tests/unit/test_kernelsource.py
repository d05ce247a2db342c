"""Following a kernel-message source (neuron_k8s/kernelsource.py): a text file appended to,
truncated, rotated, missing; /dev/kmsg's records, EAGAIN and EPIPE, through a scripted read()
on a real character device."""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from neuron_k8s import kernelsource
from neuron_k8s.kernelsource import KernelSource

ERROR = "[ 12.000001] NEURON_HW_ERR=DMA_ERROR nd-id={}"


def append(path: Path, *lines: str) -> None:
    with path.open("a") as f:
        f.writelines(line + "\n" for line in lines)


def warnings(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return sum(1 for r in caplog.records if r.levelno == logging.WARNING and text in r.message)


def test_a_file_is_read_from_its_start_then_only_what_is_appended(tmp_path: Path) -> None:
    path = tmp_path / "kern.log"
    append(path, ERROR.format(1), "[ 12.1] usb 1-1: new device")
    source = KernelSource(str(path))
    assert source.poll() == [ERROR.format(1)]
    assert source.poll() == []
    append(path, ERROR.format(2))
    assert source.poll() == [ERROR.format(2)]


def test_a_line_still_being_written_waits_for_its_newline(tmp_path: Path) -> None:
    path = tmp_path / "kern.log"
    path.write_text("[ 1.0] NEURON_HW_ERR=DMA_")
    source = KernelSource(str(path))
    assert source.poll() == []
    append(path, "ERROR nd-id=4")
    assert source.poll() == ["[ 1.0] NEURON_HW_ERR=DMA_ERROR nd-id=4"]


def test_a_truncated_file_is_read_again_from_its_start(tmp_path: Path) -> None:
    path = tmp_path / "kern.log"
    append(path, *(f"[ 1.0] filler line {i}" for i in range(20)))
    source = KernelSource(str(path))
    assert source.poll() == []
    path.write_text(ERROR.format(5) + "\n")  # same inode, shorter
    assert source.poll() == [ERROR.format(5)]


def test_a_file_rewritten_in_place_and_grown_is_read_again_from_its_start(tmp_path: Path) -> None:
    path = tmp_path / "kern.log"
    append(path, "[ 1.0] filler")
    source = KernelSource(str(path))
    assert source.poll() == []
    with path.open("w") as f:  # emptied and written again before the next poll
        f.write(ERROR.format(6) + "\n" + "[ 2.0] more filler\n")
    assert source.poll() == [ERROR.format(6)]


def test_a_rotated_file_is_finished_then_the_new_one_read_from_its_start(
    tmp_path: Path,
) -> None:
    path = tmp_path / "kern.log"
    append(path, ERROR.format(1))
    source = KernelSource(str(path))
    assert source.poll() == [ERROR.format(1)]
    append(path, ERROR.format(2))
    path.rename(tmp_path / "kern.log.1")
    append(path, ERROR.format(3))
    assert source.poll() == [ERROR.format(2), ERROR.format(3)]


def test_a_missing_file_warns_once_and_is_read_once_it_appears(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "kern.log"
    source = KernelSource(str(path))
    with caplog.at_level(logging.INFO):
        assert [source.poll() for _ in range(5)] == [[]] * 5
        append(path, ERROR.format(7))
        assert source.poll() == [ERROR.format(7)]
    assert warnings(caplog, "unreadable") == 1


def test_a_directory_is_no_source_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = KernelSource(str(tmp_path))
    with caplog.at_level(logging.WARNING):
        assert [source.poll() for _ in range(3)] == [[]] * 3
    assert warnings(caplog, "unreadable") == 1


def test_a_file_resumes_where_this_boots_earlier_process_stopped(tmp_path: Path) -> None:
    path = tmp_path / "kern.log"
    append(path, ERROR.format(1))
    first = KernelSource(str(path))
    with path.open("a") as f:
        f.write("[ 1.2] NEURON_HW_ERR=DMA_")  # a line still being written
    assert first.poll() == [ERROR.format(1)]
    position = first.position()
    first.close()
    append(path, "ERROR nd-id=2")
    assert KernelSource(str(path), position).poll() == ["[ 1.2] NEURON_HW_ERR=DMA_ERROR nd-id=2"]


def test_a_position_in_a_file_rewritten_in_place_is_not_resumed(tmp_path: Path) -> None:
    path = tmp_path / "kern.log"
    append(path, "[ 1.0] filler one", "[ 1.1] filler two")
    first = KernelSource(str(path))
    first.poll()
    position = first.position()
    first.close()
    with path.open("w") as f:  # same inode, as long again, other bytes
        f.write(ERROR.format(8) + "\n" + "[ 9.9] filler, and more of it\n")
    assert KernelSource(str(path), position).poll() == [ERROR.format(8)]


def test_a_position_in_another_file_is_not_resumed(tmp_path: Path) -> None:
    path = tmp_path / "kern.log"
    append(path, ERROR.format(1))
    first = KernelSource(str(path))
    first.poll()
    path.unlink()
    append(path, ERROR.format(2))
    assert KernelSource(str(path), first.position()).poll() == [ERROR.format(2)]


class ScriptedKmsg:
    """os.read of the kernel's /dev/kmsg: one record per call, then EAGAIN; an OSError in
    the script is raised."""

    def __init__(self, script: list[bytes | OSError]) -> None:
        self.script = script

    def __call__(self, fd: int, size: int) -> bytes:
        assert size >= 8192
        if not self.script:
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
        step = self.script.pop(0)
        if isinstance(step, OSError):
            raise step
        return step


@pytest.fixture
def kmsg(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedKmsg]:
    scripted = ScriptedKmsg([])
    monkeypatch.setattr(kernelsource.os, "read", scripted)
    yield scripted


def record(seq: int, message: str) -> bytes:
    return f"3,{seq},{seq * 1000},-;{message}\n SUBSYSTEM=pci\n".encode()


def test_kmsg_records_are_read_until_eagain_and_only_candidates_come_out(
    kmsg: ScriptedKmsg,
) -> None:
    kmsg.script = [record(1, "neuron: loaded"), record(2, "NEURON_HW_ERR=DMA_ERROR nd-id=3")]
    source = KernelSource("/dev/null")  # a character device: read as /dev/kmsg
    assert source.poll() == ["3,2,2000,-;NEURON_HW_ERR=DMA_ERROR nd-id=3"]
    assert source.position() == {"seq": 2}
    assert source.poll() == []


def test_kmsg_overwritten_records_are_logged_once_and_reading_goes_on(
    kmsg: ScriptedKmsg, caplog: pytest.LogCaptureFixture
) -> None:
    pipe = OSError(errno.EPIPE, "Broken pipe")
    kmsg.script = [pipe, record(90, "NEURON_HW_ERR=NC_UNCORRECTABLE_ERROR nd-id=1"), pipe]
    source = KernelSource("/dev/null")
    with caplog.at_level(logging.WARNING):
        assert source.poll() == ["3,90,90000,-;NEURON_HW_ERR=NC_UNCORRECTABLE_ERROR nd-id=1"]
    assert warnings(caplog, "overwritten") == 1


def test_kmsg_records_read_by_this_boots_earlier_process_are_skipped(
    kmsg: ScriptedKmsg,
) -> None:
    kmsg.script = [
        record(5, "NEURON_HW_ERR=DMA_ERROR nd-id=1"),
        record(6, "NEURON_HW_ERR=DMA_ERROR nd-id=2"),
    ]
    assert KernelSource("/dev/null", {"seq": 5}).poll() == [
        "3,6,6000,-;NEURON_HW_ERR=DMA_ERROR nd-id=2"
    ]


def test_kmsg_read_error_closes_the_source_warns_once_and_reopens(
    kmsg: ScriptedKmsg, caplog: pytest.LogCaptureFixture
) -> None:
    source = KernelSource("/dev/null")
    kmsg.script = [OSError(errno.EIO, "Input/output error")]
    with caplog.at_level(logging.WARNING):
        assert source.poll() == []
        kmsg.script = [OSError(errno.EIO, "Input/output error")]
        assert source.poll() == []
    kmsg.script = [record(1, "NEURON_HW_ERR=DMA_ERROR nd-id=0")]
    assert source.poll() == ["3,1,1000,-;NEURON_HW_ERR=DMA_ERROR nd-id=0"]
    assert warnings(caplog, "unreadable") == 1
    assert os.path.exists("/dev/null")
