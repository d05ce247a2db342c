"""Neuron hardware errors in kernel messages: which line reports one, of which kind, for which
device. Pure: no I/O (hardwareerrors.py reads the source and keeps the record);
docs/architecture.md, "Hardware errors".

The kinds are the four AWS's node-problem-detector rules match (`NEURON_HW_ERR=<KIND>`, condition
`NeuronHealth`). The Neuron driver writes such a line as, for example,
`NEURON_HW_ERR=SRAM_UNCORRECTABLE_ERROR instance-id=i-0592 hostname=ip-10-0-0-1 nd-id=0 nc-id=0
serial-num=19fc action=TERMINATE_INSTANCE`.

A line comes in one of the shapes a source gives:
- a /dev/kmsg record: `6,1234,5678901,-;message` (the record's continuation lines, which start
  with a space, are ignored);
- dmesg: `[ 1234.567890] message`;
- syslog or journal text: `Dec  6 12:00:00 host kernel: message` (another program's line is
  not a kernel message and is ignored);
- or the bare message.
The device is named as `nd-id=3`, `nd_id=3`, `nd=3`, `neuron3`, `device 3`, `device=3` or
`dev=3` (first of these forms that the line holds); a line with an error kind but no device
(or an index of no possible device) concerns the whole node. Anything else, including garbage,
is None, never an exception.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from neuron_k8s.topology import MAX_DEVICES

KINDS = (
    "SRAM_UNCORRECTABLE_ERROR",
    "NC_UNCORRECTABLE_ERROR",
    "HBM_UNCORRECTABLE_ERROR",
    "DMA_ERROR",
)
MARKER = "NEURON_HW_ERR"
MAX_LINE = 4096  # longer is not a kernel message (the kernel's own limit is 1 KiB)
MESSAGE_CHARS = 200  # of the message kept in the record, the Event and the condition

# A word boundary that also excludes `-`, `.` and `=`, so that `nc-id=3` is not `id=3`, and
# `hostname=neuron3-a` is not device 3.
_B = r"(?<![\w.=-])"
_E = r"(?![\w.-])"
_ERROR = re.compile(_B + MARKER + r"=([A-Z_]{1,64})" + _E)
# In order of preference: the driver's own `nd-id` first.
_DEVICE_FORMS = [
    re.compile(_B + form + r"(\d{1,4})" + _E)
    for form in (r"nd[-_]id=", r"nd=", r"neuron", r"device[ =]", r"dev=")
]
_KMSG = re.compile(r"(\d{1,3}),(\d{1,20}),(\d{1,20}),[^;]{0,64};(.*)", re.DOTALL)
_DMESG = re.compile(r"\[\s*\d{1,12}\.\d{1,9}\]\s?(.*)", re.DOTALL)
_KERNEL_TAG = re.compile(r"(?:^|\s)kernel(?:\[\d{1,10}\])?:\s?")
# `Dec  6 12:00:00 host tag[pid]: ` or `2024-12-06T12:00:00.000+00:00 host tag: `
_SYSLOG = re.compile(
    r"(?:[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d|\d{4}-\d\d-\d\dT[\d:.]+(?:Z|[+-][\d:]+)?)"
    r" \S+ [^\s:\[]+(?:\[\d+\])?: "
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True)
class HardwareError:
    kind: str  # one of KINDS
    device: int | None  # None: the line names no device, the whole node is concerned
    message: str  # the kernel message, trimmed to MESSAGE_CHARS


def kernel_message(line: str) -> str | None:
    """The kernel's message in one line of a source, without the source's prefix; None for a
    continuation line or another program's syslog line."""
    if not line or line[0] in " \t":
        return None
    match = _KMSG.match(line)
    if match:
        return match.group(4)
    match = _DMESG.match(line)
    if match:
        return match.group(1)
    match = _KERNEL_TAG.search(line, 0, 160)
    if match:
        rest = line[match.end() :]
        dmesg = _DMESG.match(rest)  # rsyslog may keep the kernel's timestamp
        return dmesg.group(1) if dmesg else rest
    if _SYSLOG.match(line):
        return None
    return line


def _device(message: str) -> int | None:
    for form in _DEVICE_FORMS:
        for match in form.finditer(message):
            index = int(match.group(1))
            if index < MAX_DEVICES:
                return index
    return None


def parse_line(text: str) -> HardwareError | None:
    """The hardware error one line of a kernel-message source reports, or None. Only the text
    up to the first newline counts (a /dev/kmsg record's continuation lines follow it)."""
    if len(text) > MAX_LINE or MARKER not in text:
        return None
    line = text.split("\n", 1)[0].rstrip("\r")
    if _CONTROL.search(line):
        return None  # binary
    message = kernel_message(line)
    if message is None:
        return None
    kind = next((m.group(1) for m in _ERROR.finditer(message) if m.group(1) in KINDS), None)
    if kind is None:
        return None
    return HardwareError(kind, _device(message), message.strip()[:MESSAGE_CHARS])


def kmsg_record(record: bytes) -> tuple[int | None, str]:
    """One record read from /dev/kmsg (one per read()): its sequence number (None when the
    record is not in the kmsg format) and its first line, decoded; the dictionary lines that
    follow it are dropped."""
    line = record.split(b"\n", 1)[0].decode("utf-8", "replace")
    match = _KMSG.match(line)
    return (int(match.group(2)) if match else None), line


def split_lines(carry: bytes, data: bytes) -> tuple[list[bytes], bytes]:
    """Complete lines of `carry + data`, and what follows the last newline (a line still being
    written), to carry into the next read. The carry is cut at MAX_LINE + 1 bytes: a line that
    long is not a kernel message whatever follows, and stays too long to be parsed."""
    lines = (carry + data).split(b"\n")
    rest = lines.pop()
    return lines, rest[: MAX_LINE + 1]
