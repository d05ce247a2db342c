"""How the scale benchmark finds its programs (plugin-src/bench/scale_tools.py): helm from
PATH or the project's .tools/bin, installed there when neither has it, so that
`python plugin-src/bench/bench_scale.py` runs from a fresh clone without .tools/bin on PATH;
and the Kubernetes binaries of the current release's own directory."""

import os
import shutil
import stat
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "plugin-src" / "bench"))
from scale_schedulers import scheduler_config
from scale_tools import REPO, find_tool, k8s_bin


def executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_a_tool_on_path_is_taken_from_path(tmp_path):
    on_path = executable(tmp_path / "bin" / "helm")
    executable(tmp_path / "repo" / ".tools" / "bin" / "helm")
    found = find_tool("helm", repo=tmp_path / "repo", path=str(on_path.parent))
    assert found == str(on_path)


def test_a_tool_missing_from_path_is_taken_from_tools_bin(tmp_path):
    local = executable(tmp_path / ".tools" / "bin" / "helm")
    assert find_tool("helm", repo=tmp_path, path=str(tmp_path / "empty")) == str(local)


def test_a_tool_nowhere_is_installed_into_tools_bin_then_used(tmp_path):
    installs = []

    def install():
        installs.append(1)
        executable(tmp_path / ".tools" / "bin" / "helm")

    found = find_tool("helm", repo=tmp_path, path="", install=install)
    assert installs == [1]
    assert found == str(tmp_path / ".tools" / "bin" / "helm")


def test_an_install_that_leaves_no_tool_stops_with_a_sentence(tmp_path):
    with pytest.raises(SystemExit, match="helm is neither on PATH nor in"):
        find_tool("helm", repo=tmp_path, path="", install=lambda: None)


def test_the_extender_run_renders_the_chart_without_helm_on_path(monkeypatch):
    """The bug: the extender run called `helm` from PATH, and failed with FileNotFoundError
    when the user had not put .tools/bin there (tox does; the documented command does not)."""
    assert (REPO / ".tools" / "bin" / "helm").exists(), "run scripts/install-tools.sh"
    without_helm = [p for p in os.environ["PATH"].split(os.pathsep) if p]
    without_helm = [p for p in without_helm if not (Path(p) / "helm").exists()]
    monkeypatch.setenv("PATH", os.pathsep.join(without_helm))
    assert shutil.which("helm") is None
    config = scheduler_config(Path("/kubeconfig"), 100, 12345)
    assert config["extenders"][0]["urlPrefix"] == "http://127.0.0.1:12345"


def test_kubernetes_binaries_are_the_releases_own(tmp_path):
    assert k8s_bin("v9.1.0", tmp_path) == tmp_path / "cluster/.cache/k8s-v9.1.0/bin"
