"""Where the benchmarks find their programs, built or installed through the project's own
scripts when missing, so that `python plugin-src/bench/bench_scale.py` runs from a fresh clone
with nothing on PATH:
- the Kubernetes binaries of the current release (cluster/k8s/release.sh: one directory per
  version, cluster/.cache/k8s-<version>/bin), built by cluster/k8s/build.sh;
- etcd, in cluster/.cache/bin, built by cluster/build-binaries.sh;
- helm: PATH first, then .tools/bin (what scripts/install-tools.sh installs), installed there by
  that script when neither has it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "cluster")]

from versions import VERSIONS  # noqa: E402

KUBERNETES_VERSION = VERSIONS["KUBERNETES_VERSION"]
ETCD_BIN = REPO / "cluster" / ".cache" / "bin"
TOOLS_BIN = ".tools/bin"


def k8s_bin(version: str = KUBERNETES_VERSION, repo: Path = REPO) -> Path:
    """The release's binaries, where cluster/k8s/release.sh puts them."""
    return repo / "cluster" / ".cache" / f"k8s-{version}" / "bin"


def _run(args: list[str], env: Mapping[str, str] | None = None) -> None:
    subprocess.run(args, check=True, env=None if env is None else {**os.environ, **env})


def binaries(*names: str) -> dict[str, Path]:
    """etcd and the current release's Kubernetes binaries, each built first when missing."""
    out, k8s = {}, []
    for name in names:
        if name == "etcd":
            if not (ETCD_BIN / name).exists():
                _run(["bash", str(REPO / "cluster" / "build-binaries.sh")])
            out[name] = ETCD_BIN / name
        else:
            if not (k8s_bin() / name).exists():
                k8s.append(name)
            out[name] = k8s_bin() / name
    if k8s:
        # The current release, whatever NEURON_E2E_K8S_RELEASE says: the benchmarks run on it.
        env = {"CMDS": " ".join(k8s), "NEURON_E2E_K8S_RELEASE": "current"}
        _run(["bash", str(REPO / "cluster" / "k8s" / "build.sh")], env)
    return out


def find_tool(
    name: str,
    repo: Path = REPO,
    path: str | None = None,
    install: Callable[[], None] | None = None,
) -> str:
    """`name` from PATH, else from the project's .tools/bin, installing it there first (with
    scripts/install-tools.sh unless `install` is given) when neither has it."""
    found = shutil.which(name, path=os.environ.get("PATH", "") if path is None else path)
    if found:
        return found
    local = repo / TOOLS_BIN / name
    if not os.access(local, os.X_OK):
        (install or (lambda: _run(["bash", str(repo / "scripts" / "install-tools.sh")])))()
    if not os.access(local, os.X_OK):
        raise SystemExit(f"{name} is neither on PATH nor in {local}, and installing it failed")
    return str(local)


def helm() -> str:
    return find_tool("helm")
