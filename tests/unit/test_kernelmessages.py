"""The kernel-message parser (neuron_k8s/kernelmessages.py): AWS's four Neuron hardware-error
kinds in each shape a source gives, the device each names, and garbage, which is never an
error and never raises."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from neuron_k8s.kernelmessages import (
    KINDS,
    MAX_LINE,
    MESSAGE_CHARS,
    HardwareError,
    kmsg_record,
    parse_line,
    split_lines,
)

# As the Neuron driver writes it (AWS's troubleshooting guide), with the kind left open.
DRIVER_MESSAGE = (
    "NEURON_HW_ERR={kind} instance-id=i-0592464924bd45322 hostname=ip-172-31-61-252 "
    "nd-id=3 nc-id=0 serial-num=19fcda00f5ff6eb9 action=TERMINATE_INSTANCE"
)
SHAPES = {
    "kmsg": "3,1234,5678901,-;{message}",
    "kmsg with more prefix fields": "3,1234,5678901,c,caller=T12;{message}",
    "dmesg": "[ 1234.567890] {message}",
    "syslog": "Dec  6 12:00:00 ip-172-31-61-252 kernel: {message}",
    "journal": "Dec 06 12:00:00 ip-172-31-61-252 kernel: {message}",
    "syslog keeping the kernel's timestamp": "Dec  6 12:00:00 host kernel: [ 12.5] {message}",
    "iso syslog": "2024-12-06T12:00:00.123456+00:00 host kernel: {message}",
    "bare": "{message}",
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", SHAPES)
def test_each_kind_in_each_line_shape_is_an_error_of_the_device_the_driver_names(
    kind: str, shape: str
) -> None:
    message = DRIVER_MESSAGE.format(kind=kind)
    assert parse_line(SHAPES[shape].format(message=message)) == HardwareError(kind, 3, message)


@pytest.mark.parametrize(
    "naming",
    [
        "nd-id=3",
        "nd_id=3",
        "nd=3",
        "neuron3:",
        "neuron3",
        "device 3",
        "device=3",
        "dev=3",
        "on device 3,",
        "(neuron3)",
    ],
)
def test_each_form_of_naming_a_device_gives_its_index(naming: str) -> None:
    error = parse_line(f"[ 5.000001] NEURON_HW_ERR=DMA_ERROR {naming} queue=7")
    assert error is not None and error.device == 3


@pytest.mark.parametrize(
    "message",
    [
        "NEURON_HW_ERR=HBM_UNCORRECTABLE_ERROR nc-id=3",
        "NEURON_HW_ERR=HBM_UNCORRECTABLE_ERROR affecting neuron devices",
        "NEURON_HW_ERR=HBM_UNCORRECTABLE_ERROR hostname=neuron3-a serial-num=3",
        "NEURON_HW_ERR=HBM_UNCORRECTABLE_ERROR nd-id=64",
        "NEURON_HW_ERR=HBM_UNCORRECTABLE_ERROR xnd-id=3 devices 3 neuron3x",
    ],
)
def test_a_line_naming_no_device_of_a_node_concerns_the_whole_node(message: str) -> None:
    assert parse_line(message) == HardwareError("HBM_UNCORRECTABLE_ERROR", None, message)


def test_the_driver_id_wins_over_a_device_named_otherwise() -> None:
    error = parse_line("neuron1: NEURON_HW_ERR=DMA_ERROR nd-id=5 device 2")
    assert error is not None and error.device == 5


def test_the_highest_possible_index_is_a_device_and_the_next_is_not() -> None:
    assert parse_line("NEURON_HW_ERR=DMA_ERROR nd-id=63") == HardwareError(
        "DMA_ERROR", 63, "NEURON_HW_ERR=DMA_ERROR nd-id=63"
    )
    error = parse_line("NEURON_HW_ERR=DMA_ERROR nd-id=64")
    assert error is not None and error.device is None


def test_the_message_is_trimmed_to_200_characters() -> None:
    message = "NEURON_HW_ERR=DMA_ERROR nd-id=1 " + "x" * 1000
    error = parse_line(f"6,1,2,-;{message}")
    assert error is not None and error.message == message[:MESSAGE_CHARS]


def test_an_unknown_error_name_is_not_an_error() -> None:
    assert parse_line("[ 1.0] NEURON_HW_ERR=FOO nd-id=3") is None
    assert parse_line("[ 1.0] NEURON_HW_ERR=HANG_ON_COLLECTIVES nd-id=3") is None


def test_a_known_kind_after_an_unknown_one_is_an_error() -> None:
    error = parse_line("NEURON_HW_ERR=FOO NEURON_HW_ERR=NC_UNCORRECTABLE_ERROR nd-id=2")
    assert error is not None and (error.kind, error.device) == ("NC_UNCORRECTABLE_ERROR", 2)


@pytest.mark.parametrize(
    "line",
    [
        "XNEURON_HW_ERR=DMA_ERROR nd-id=3",
        "NEURON_HW_ERR=DMA_ERRORS nd-id=3",
        "NEURON_HW_ERR=DMA_ERROR_2 nd-id=3",
        "MY_NEURON_HW_ERR=DMA_ERROR nd-id=3",
        "NEURON_HW_ERR=DMA_ERROR-like nd-id=3",
    ],
)
def test_the_pattern_inside_another_word_is_not_an_error(line: str) -> None:
    assert parse_line(line) is None


def test_a_kmsg_continuation_line_is_not_an_error() -> None:
    assert parse_line(" DEVICE=+neuron:neuron3 NEURON_HW_ERR=DMA_ERROR nd-id=3") is None


def test_only_the_first_line_of_a_kmsg_record_counts() -> None:
    record = "3,9,10,-;neuron: reset done\n NOTE=NEURON_HW_ERR=DMA_ERROR nd-id=3\n"
    assert parse_line(record) is None


def test_another_programs_syslog_line_is_not_a_kernel_message() -> None:
    line = "Dec  6 12:00:00 host myapp[123]: NEURON_HW_ERR=DMA_ERROR nd-id=3"
    assert parse_line(line) is None


def test_a_line_with_control_characters_is_binary_not_an_error() -> None:
    assert parse_line("NEURON_HW_ERR=DMA_ERROR\x00\x01 nd-id=3") is None


def test_a_line_longer_than_4_kib_is_not_an_error() -> None:
    line = "NEURON_HW_ERR=DMA_ERROR nd-id=3 " + "a" * MAX_LINE
    assert parse_line(line) is None


def test_a_kmsg_record_gives_its_sequence_number_and_first_line() -> None:
    record = b"3,1234,5678901,-;NEURON_HW_ERR=DMA_ERROR nd-id=3\n SUBSYSTEM=pci\n DEVICE=+x\n"
    assert kmsg_record(record) == (1234, "3,1234,5678901,-;NEURON_HW_ERR=DMA_ERROR nd-id=3")


def test_a_record_not_in_the_kmsg_format_has_no_sequence_number() -> None:
    assert kmsg_record(b"\xff\xfegarbage") == (None, "\ufffd\ufffdgarbage")


def test_split_lines_carries_an_incomplete_last_line_into_the_next_read() -> None:
    lines, carry = split_lines(b"", b"one\ntw")
    assert (lines, carry) == ([b"one"], b"tw")
    assert split_lines(carry, b"o\nthree\n") == ([b"two", b"three"], b"")


def test_split_lines_keeps_an_overlong_partial_line_too_long_to_parse() -> None:
    _, carry = split_lines(b"", b"x" * (3 * MAX_LINE))
    (line,), _ = split_lines(carry, b" NEURON_HW_ERR=DMA_ERROR nd-id=3\n")
    assert len(line) > MAX_LINE and parse_line(line.decode()) is None


@given(st.text(max_size=600))
def test_arbitrary_text_never_raises(text: str) -> None:
    result = parse_line(text)
    assert result is None or result.kind in KINDS


@given(st.text(max_size=200), st.sampled_from(KINDS), st.text(max_size=200))
def test_arbitrary_text_around_a_kind_never_raises(before: str, kind: str, after: str) -> None:
    result = parse_line(f"{before} NEURON_HW_ERR={kind} {after}")
    assert result is None or (result.kind in KINDS and len(result.message) <= MESSAGE_CHARS)


@given(st.binary(max_size=600))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    seq, line = kmsg_record(data)
    assert seq is None or seq >= 0
    parse_line(line)
