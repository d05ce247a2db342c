"""The pinned versions of versions.env, for Python (the scripts source the file itself)."""

from __future__ import annotations

import os
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

# NEURON_E2E_K8S_RELEASE picks the release a run builds and runs (cluster/k8s/release.sh).
RELEASES = {"current": "KUBERNETES_VERSION", "oldest": "KUBERNETES_OLDEST_VERSION"}


def kubernetes_version(release: str | None = None) -> str:
    """The Kubernetes version of `release` (default: NEURON_E2E_K8S_RELEASE, else current)."""
    name = release or os.environ.get("NEURON_E2E_K8S_RELEASE") or "current"
    if name not in RELEASES:
        raise SystemExit(f"NEURON_E2E_K8S_RELEASE must be current or oldest, not {name!r}")
    return VERSIONS[RELEASES[name]]


def release_cache(version: str) -> Path:
    """Where one release's binaries (bin/) and images (images/) are built."""
    return FILE.parent / "cluster" / ".cache" / f"k8s-{version}"
