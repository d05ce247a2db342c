"""versions.env is the one place a pinned version is written: every script and Python module
reads it, and Go's go.mod files (which can read nothing else) agree with it."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "cluster"))
spec = importlib.util.spec_from_file_location("versions", ROOT / "cluster" / "versions.py")
versions = importlib.util.module_from_spec(spec)
spec.loader.exec_module(versions)

# Files that may hold a pinned version: the file itself, and Go's module files.
ALLOWED = re.compile(r"(^versions\.env|(^|/)go\.(mod|sum))$")


def _pattern(value: str) -> re.Pattern[str]:
    """The value as written (v9.2.4), or bare (9.2.4) after a space, quote, colon, @ or
    start of line, and not part of a longer version."""
    bare = re.escape(value.removeprefix("v"))
    return re.compile(rf"(?<![\w.]){re.escape(value)}(?![\w.])|(?:^|(?<=[\s\"':@])){bare}(?![\w.])")


def occurrences(files: dict[str, str], pinned: dict[str, str]) -> list[str]:
    out = []
    for name, text in files.items():
        if ALLOWED.search(name):
            continue
        for key, value in pinned.items():
            for number, line in enumerate(text.splitlines(), 1):
                if _pattern(value).search(line):
                    out.append(f"{name}:{number}: {key} {value}: {line.strip()}")
    return out


def _project_files() -> dict[str, str]:
    names = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "--cached", "--others", "--exclude-standard"],
        check=True,
        text=True,
        capture_output=True,
    ).stdout.split()
    files = {}
    for name in names:
        path = ROOT / name
        if path.is_file():
            try:
                files[name] = path.read_text()
            except UnicodeDecodeError:
                continue
    return files


def test_the_go_modules_require_the_pinned_kubernetes_releases_and_etcd():
    current = (ROOT / "cluster/k8s/go.mod").read_text()
    oldest = (ROOT / "cluster/k8s/oldest/go.mod").read_text()
    etcd = (ROOT / "cluster/etcd/go.mod").read_text()
    assert f"require k8s.io/kubernetes {versions.VERSIONS['KUBERNETES_VERSION']}\n" in current
    assert f"require k8s.io/kubernetes {versions.VERSIONS['KUBERNETES_OLDEST_VERSION']}\n" in oldest
    assert f"require go.etcd.io/etcd/server/v3 {versions.VERSIONS['ETCD_VERSION']}\n" in etcd


@pytest.mark.parametrize("module", ["cluster/k8s/go.mod", "cluster/k8s/oldest/go.mod"])
def test_every_staging_module_is_pinned_to_its_release(module):
    """k8s.io/kubernetes replaces its staging modules with local paths: each must be pinned
    to the v0.Y.Z of the required release, or the build mixes releases."""
    text = (ROOT / module).read_text()
    required = re.search(r"^require k8s\.io/kubernetes v1\.(\d+\.\d+)$", text, re.M)
    assert required
    pins = re.findall(r"^\s+(k8s\.io/[\w-]+) => \1 (v\S+)$", text, re.M)
    assert len(pins) > 20
    assert {v for _, v in pins} == {f"v0.{required.group(1)}"}


def test_the_release_is_chosen_by_the_environment(monkeypatch):
    monkeypatch.setenv("NEURON_E2E_K8S_RELEASE", "oldest")
    assert versions.kubernetes_version() == versions.VERSIONS["KUBERNETES_OLDEST_VERSION"]
    monkeypatch.delenv("NEURON_E2E_K8S_RELEASE")
    assert versions.kubernetes_version() == versions.VERSIONS["KUBERNETES_VERSION"]


def test_an_unknown_release_is_refused_with_the_choices(monkeypatch):
    monkeypatch.setenv("NEURON_E2E_K8S_RELEASE", "1.37")
    with pytest.raises(SystemExit, match="current or oldest"):
        versions.kubernetes_version()


def test_the_etcd_image_tag_is_the_etcd_version():
    tag = versions.VERSIONS["ETCD_IMAGE_TAG"]
    assert tag.startswith(versions.VERSIONS["ETCD_VERSION"].removeprefix("v") + "-")


def test_no_pinned_version_is_written_anywhere_else():
    assert occurrences(_project_files(), versions.VERSIONS) == []


@pytest.mark.parametrize(
    "line",
    ["KIND=v9.1.0", "tag: v9.2.4", "etcd 9.3.5 and more", 'image: "pause:9.10.1"'],
)
def test_a_planted_copy_is_found(line):
    pinned = {"KIND_VERSION": "v9.1.0", "K": "v9.2.4", "E": "v9.3.5", "P": "9.10.1"}
    assert occurrences({"scripts/x.sh": line}, pinned)


@pytest.mark.parametrize("line", ["mypy==9.19.0", "v9.2.45", "v19.2.4", "x9.2.4"])
def test_a_longer_or_foreign_version_is_not_a_copy(line):
    assert occurrences({"tox.ini": line}, {"K": "v9.2.4", "M": "v9.19.0"}) == []


def test_go_modules_and_the_file_itself_may_hold_versions():
    files = {"versions.env": "K=v9.2.4", "cluster/k8s/go.mod": "require k8s.io/kubernetes v9.2.4"}
    assert occurrences(files, {"K": "v9.2.4"}) == []


def test_the_file_is_read_strictly(tmp_path):
    bad = tmp_path / "versions.env"
    bad.write_text("KUBERNETES_VERSION v9.2.4\n")
    with pytest.raises(ValueError, match="not KEY=VALUE"):
        versions.load(bad)
