"""Chart.yaml as chart-testing checks it: complete metadata, and a version bumped whenever the
chart changes (against the commit that last set the version, as ct compares with its target
branch)."""

import subprocess

import yaml
from chartlib import CHART, REPO, VERSIONS, render_error
from packaging.version import Version

CHART_YAML = yaml.safe_load((CHART / "Chart.yaml").read_text())


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), *args], check=True, text=True, capture_output=True
    ).stdout


def _major_minor(key: str) -> tuple[int, int]:
    major, minor = VERSIONS[key].lstrip("v").split(".")[:2]
    return int(major), int(minor)


def test_chart_yaml_supports_the_oldest_release_ci_tests_and_nothing_older():
    major, minor = _major_minor("KUBERNETES_OLDEST_VERSION")
    assert CHART_YAML["kubeVersion"] == f">={major}.{minor}.0-0"


def test_a_cluster_older_than_the_oldest_tested_release_is_refused():
    major, minor = _major_minor("KUBERNETES_OLDEST_VERSION")
    older = f"v{major}.{minor - 1}.9"
    error = render_error(kube_version=older)
    assert f"chart requires kubeVersion: {CHART_YAML['kubeVersion']}" in error
    assert f"incompatible with Kubernetes {older}" in error


def test_chart_yaml_names_its_sources_and_a_reachable_maintainer():
    assert CHART_YAML["sources"] and all(s.startswith("https://") for s in CHART_YAML["sources"])
    assert all(m.get("email") or m.get("url") for m in CHART_YAML["maintainers"])


def _version_at(commit: str) -> Version:
    return Version(yaml.safe_load(_git("show", f"{commit}:charts/neuron/Chart.yaml"))["version"])


def test_a_changed_chart_has_a_new_version():
    current = Version(CHART_YAML["version"])
    commits = _git("log", "--format=%H", "--", "charts/neuron/Chart.yaml").split()  # newest first
    versions = [_version_at(c) for c in commits]
    # The commit that set the current version: the oldest of the newest run that carries it.
    run = 0
    while run < len(commits) and versions[run] == current:
        run += 1
    if run < len(commits):
        assert current > versions[run], f"version {current} is not above {versions[run]}"
    if run == 0 or run == len(commits):
        return  # not committed yet, or the chart's first version: nothing to compare with
    setting = commits[run - 1]
    changed = _git("diff", "--name-only", setting, "--", "charts/neuron").split()
    assert changed == [], (
        f"charts/neuron changed since version {current} was set in {setting[:12]} ({changed}):"
        " bump `version` in charts/neuron/Chart.yaml"
    )
