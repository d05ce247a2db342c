"""Writing a file whole or not at all, for files other processes read while they change (the
hardware-error record, the extender's certificates)."""

from __future__ import annotations

import contextlib
import os
import tempfile


def write_atomically(path: str, content: bytes) -> None:
    """A temporary file (mode 0600) in the same directory, synced and renamed over `path`: a
    reader sees the old content or the new, never a part. Creates the directory."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    name = os.path.basename(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
