"""Running the harness's commands: the PATH its tools are found on, and one printed line per
command, so that a log shows what ran."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

from versions import kubernetes_version

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CACHE = HERE / ".cache"
KUBECONFIG = CACHE / "kubeconfig"
SID_DIR = Path(os.environ.get("NEURON_SID_DIR", "/opt/neuron-sid"))


def env() -> dict[str, str]:
    """The caller's environment, with the tools this project installs first on PATH: the
    Docker engine setup-host.sh unpacks (offline path), the binaries cluster/ builds (the
    Kubernetes release's first: its kubectl and kube-scheduler), and .tools/bin (helm)."""
    e = dict(os.environ)
    path = [
        str(SID_DIR / "root/usr/sbin"),
        str(SID_DIR / "root/usr/bin"),
        str(CACHE / f"k8s-{kubernetes_version()}" / "bin"),
        str(CACHE / "bin"),
        str(ROOT / ".tools/bin"),
        e.get("PATH", ""),
    ]
    e["PATH"] = os.pathsep.join(path)
    e["KUBECONFIG"] = str(KUBECONFIG)
    return e


def run(
    cmd: list[str] | str,
    check: bool = True,
    capture: bool = False,
    input: str | None = None,
    env_extra: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    shown = cmd if isinstance(cmd, str) else shlex.join(cmd)
    extra = "".join(f"{k}={v} " for k, v in (env_extra or {}).items())
    print(f"+ {extra}{shown}", flush=True)
    return subprocess.run(
        cmd,
        shell=isinstance(cmd, str),
        check=check,
        text=True,
        env={**env(), **(env_extra or {})},
        capture_output=capture,
        input=input,
    )


def succeeds(cmd: list[str]) -> bool:
    """Whether a probe command exits 0 (quietly: its output is not the log's business)."""
    try:
        done = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def out(cmd: list[str]) -> str:
    return subprocess.run(cmd, check=True, text=True, env=env(), capture_output=True).stdout
