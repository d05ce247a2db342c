"""The pinned versions of versions.env, for Python (the scripts source the file itself)."""

from __future__ import annotations

from pathlib import Path

FILE = Path(__file__).resolve().parents[1] / "versions.env"


def load(path: Path = FILE) -> dict[str, str]:
    """KEY=VALUE lines; blank lines and # comments skipped; no quoting or expansion."""
    out = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.isidentifier() or not value:
            raise ValueError(f"{path}:{number}: not KEY=VALUE: {line!r}")
        out[key] = value
    return out


VERSIONS = load()
