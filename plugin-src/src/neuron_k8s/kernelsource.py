"""Follows a kernel-message source for hardwareerrors.py: /dev/kmsg (a character device) or a
text file (dmesg output, a syslog or journal export, the kind imitation's file); only the lines
that may report a Neuron hardware error come out. docs/architecture.md, "Hardware errors".

- /dev/kmsg is opened non-blocking and read one record per read(): EAGAIN means caught up,
  EPIPE that records were overwritten before they were read (logged once). A new open starts
  at the oldest record in the ring buffer; records up to the last sequence number read (also
  one restored from the state file) are skipped.
- A file is read from where the last poll stopped; a new inode at the path (rotation) is read
  from its start once the old one is read to its end, and so is a file that shrank or whose
  bytes before that point changed (truncated, or rewritten in place).
- A source that is missing or unreadable is retried every poll, with one warning until it is
  readable again.
"""

from __future__ import annotations

import errno
import os
import stat
import zlib
from typing import Any

from neuron_k8s.kernelmessages import MARKER, MAX_LINE, kmsg_record, split_lines
from neuron_k8s.logs import get_logger

log = get_logger("kernelsource")

RECORD_BYTES = 8192  # one /dev/kmsg record per read(); the kernel's are at most ~1 KiB
MAX_RECORDS = 100_000  # per poll, so that one poll of a flooded ring buffer ends
MAX_READ = 8 << 20  # bytes of a file per poll; a large file is caught up over a few polls
TAIL = 64  # bytes before a file's read position that must not change for reading to go on
WINDOW = TAIL + MAX_LINE + 1  # the tail before an incomplete last line too
_MARKER = MARKER.encode()


def _candidate(line: bytes) -> str | None:
    """A line that may report a hardware error, decoded; None for every other line (most)."""
    if len(line) > MAX_LINE or _MARKER not in line:
        return None
    return line.decode("utf-8", "replace")


class KernelSource:
    """The new candidate lines of one source at each poll(). `position` restores where an
    earlier process of this boot stopped (`position()` of that process)."""

    def __init__(self, path: str, position: dict[str, int] | None = None) -> None:
        self.path = path
        self._fd: int | None = None
        self._char = False
        self._seq: int | None = None  # /dev/kmsg: last sequence number read
        self._ident: tuple[int, int] | None = None  # file: (st_dev, st_ino) of the open file
        self._offset = 0  # file: bytes read
        self._carry = b""  # file: an incomplete last line
        self._window = b""  # file: the last bytes read, up to _offset (WINDOW of them)
        self._restore = dict(position or {})
        self._warned: str | None = None  # the unavailability last warned about
        self._overwritten_warned = False
        if "seq" in self._restore:
            self._seq = self._restore["seq"]

    def position(self) -> dict[str, int]:
        """Where reading stopped, to resume after a restart of this boot."""
        if self._char:
            return {} if self._seq is None else {"seq": self._seq}
        if self._ident is None:
            return dict(self._restore)
        dev, ino = self._ident
        consumed = self._window[: len(self._window) - len(self._carry)]
        tail = zlib.crc32(consumed[-TAIL:])
        return {"dev": dev, "ino": ino, "offset": self._offset - len(self._carry), "tail": tail}

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def poll(self) -> list[str]:
        try:
            st = os.stat(self.path)
        except OSError as err:
            if self._fd is not None and not self._char:
                return self._read_file()  # rotated away: finish what was written to it
            self._unavailable(err.strerror or str(err))
            return []
        if stat.S_ISCHR(st.st_mode):
            return self._poll_kmsg()
        if not stat.S_ISREG(st.st_mode):
            self._unavailable("neither a character device nor a regular file")
            return []
        return self._poll_file(st)

    # --- /dev/kmsg -----------------------------------------------------------------------
    def _poll_kmsg(self) -> list[str]:
        if self._fd is None or not self._char:
            self.close()
            try:
                self._fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
            except OSError as err:
                self._unavailable(err.strerror or str(err))
                return []
            self._char = True
        out: list[str] = []
        for _ in range(MAX_RECORDS):
            try:
                record = os.read(self._fd, RECORD_BYTES)
            except BlockingIOError:
                break  # caught up
            except OSError as err:
                if err.errno == errno.EPIPE:
                    self._overwritten()
                    continue
                self.close()
                self._unavailable(err.strerror or str(err))
                return out
            if not record:
                break
            line = self._kmsg_line(record)
            if line is not None:
                out.append(line)
        self._available()  # read, not only opened: a source failing every read warns once
        return out

    def _kmsg_line(self, record: bytes) -> str | None:
        seq, line = kmsg_record(record)
        if seq is not None:
            if self._seq is not None and seq <= self._seq:
                return None  # read before a reopen or a restart
            self._seq = seq
        return line if _MARKER in record and len(line) <= MAX_LINE else None

    def _overwritten(self) -> None:
        if not self._overwritten_warned:
            self._overwritten_warned = True
            log.warning(
                "kernel messages were overwritten before they were read; reading on",
                path=self.path,
            )

    # --- a file --------------------------------------------------------------------------
    def _poll_file(self, st: os.stat_result) -> list[str]:
        out: list[str] = []
        ident = (st.st_dev, st.st_ino)
        if self._fd is not None and not self._char and ident != self._ident:
            out += self._read_file()  # the rest of the rotated file first
            log.info("kernel-message file replaced; reading the new one", path=self.path)
            self.close()
        if self._fd is None or self._char:
            self.close()
            try:
                self._fd = os.open(self.path, os.O_RDONLY)
            except OSError as err:
                self._unavailable(err.strerror or str(err))
                return out
            self._char = False
            self._ident, self._carry, self._window = ident, b"", b""
            self._offset = self._resumed(self._fd, ident, st.st_size)
        return out + self._read_file()

    @staticmethod
    def _tail_at(fd: int, offset: int) -> bytes:
        n = min(TAIL, offset)
        return os.pread(fd, n, offset - n) if n else b""

    def _resumed(self, fd: int, ident: tuple[int, int], size: int) -> int:
        """Where to start a newly opened file: where this boot's earlier process stopped when it
        is the same file with the same bytes before that point; else at its start."""
        restore, self._restore = self._restore, {}
        offset = restore.get("offset", 0)
        if (restore.get("dev"), restore.get("ino")) != ident or not 0 < offset <= size:
            return 0
        try:
            tail = self._tail_at(fd, offset)
        except OSError:
            return 0
        if zlib.crc32(tail) != restore.get("tail"):
            return 0
        self._window = tail
        return offset

    def _read_file(self) -> list[str]:
        fd = self._fd
        if fd is None:
            return []
        try:
            size = os.fstat(fd).st_size
            if size < self._offset or (
                size > self._offset
                and self._offset
                and self._tail_at(fd, self._offset) != self._window[-TAIL:]
            ):
                log.info(
                    "kernel-message file truncated or rewritten; reading from its start",
                    path=self.path,
                )
                self._offset, self._carry, self._window = 0, b"", b""
            data = b""
            if size > self._offset:
                data = os.pread(fd, min(size - self._offset, MAX_READ), self._offset)
        except OSError as err:
            self.close()
            self._unavailable(err.strerror or str(err))
            return []
        self._available()
        if not data:
            return []
        self._offset += len(data)
        self._window = (self._window + data)[-WINDOW:]
        lines, self._carry = split_lines(self._carry, data)
        return [text for text in map(_candidate, lines) if text is not None]

    # --- availability --------------------------------------------------------------------
    def _unavailable(self, why: str) -> None:
        if self._warned != why:
            self._warned = why
            log.warning(
                "kernel-message source unreadable; hardware errors recorded so far stay, "
                "retrying every poll",
                path=self.path,
                error=why,
            )

    def _available(self) -> None:
        if self._warned is not None:
            log.info("kernel-message source readable again", path=self.path)
        self._warned = None

    def __del__(self) -> None:
        self.close()


def describe(position: dict[str, Any]) -> str:
    """The position for a log line."""
    if "seq" in position:
        return f"record {position['seq']}"
    if "offset" in position:
        return f"byte {position['offset']} of inode {position.get('ino')}"
    return "the start"
