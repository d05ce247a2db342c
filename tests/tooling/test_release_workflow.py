""".github/workflows/release.yml publishes a tagged release, and scripts/release-build.sh runs its
build steps on a machine with no registry: these hold what a release must be (tag triggers, both
platforms, the version check, least privilege, pinned actions) and the two to the same build."""

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOW_PATH = REPO / ".github" / "workflows" / "release.yml"
WORKFLOW_TEXT = WORKFLOW_PATH.read_text()
WORKFLOW: dict[Any, Any] = yaml.safe_load(WORKFLOW_TEXT)
JOBS: dict[str, Any] = WORKFLOW["jobs"]
RELEASE_BUILD = (REPO / "scripts" / "release-build.sh").read_text()


def script_var(name: str) -> str:
    found = re.search(rf"^{name}=(\S+)$", RELEASE_BUILD, re.M)
    assert found, f"scripts/release-build.sh sets no {name}"
    return found.group(1)


def step_using(job: str, action: str) -> dict[str, Any]:
    steps = [s for s in JOBS[job]["steps"] if s.get("uses", "").startswith(action + "@")]
    assert len(steps) == 1, f"job {job} has {len(steps)} steps using {action}"
    return steps[0]


def runs(job: str) -> str:
    return "\n".join(s.get("run", "") for s in JOBS[job]["steps"])


def needs(job: str) -> set[str]:
    """The jobs that must succeed before this one, transitively."""
    direct = JOBS[job].get("needs", [])
    direct = [direct] if isinstance(direct, str) else direct
    return set(direct).union(*(needs(j) for j in direct))


def triggers() -> dict[str, Any]:
    # YAML 1.1 reads the key `on` as true.
    return WORKFLOW.get("on", WORKFLOW.get(True))


def test_a_pushed_v_tag_triggers_a_release_and_nothing_else_pushed_does():
    assert triggers()["push"] == {"tags": ["v*"]}


def test_a_release_can_be_run_by_hand_for_an_existing_tag():
    tag = triggers()["workflow_dispatch"]["inputs"]["tag"]
    assert tag["required"] is True
    assert WORKFLOW["env"]["RELEASE_TAG"] == "${{ inputs.tag || github.ref_name }}"
    for job, spec in JOBS.items():
        checkouts = [s for s in spec["steps"] if s.get("uses", "").startswith("actions/checkout@")]
        assert all(s["with"]["ref"] == "${{ env.RELEASE_TAG }}" for s in checkouts), job


def test_the_image_is_built_for_amd64_and_arm64_as_release_build_does():
    platforms = step_using("image", "docker/build-push-action")["with"]["platforms"]
    assert set(platforms.split(",")) == {"linux/amd64", "linux/arm64"}
    assert platforms == script_var("PLATFORMS")


def test_the_image_is_built_from_the_dockerfile_and_context_release_build_uses():
    build = step_using("image", "docker/build-push-action")["with"]
    assert build["file"] == script_var("DOCKERFILE")
    assert build["context"] == script_var("CONTEXT")
    assert (REPO / build["file"]).is_file()


def test_arm64_emulation_and_buildx_are_set_up_before_the_build():
    uses = [s.get("uses", "").split("@")[0] for s in JOBS["image"]["steps"]]
    qemu = uses.index("docker/setup-qemu-action")
    buildx = uses.index("docker/setup-buildx-action")
    assert qemu < buildx < uses.index("docker/build-push-action")
    assert "arm64" in step_using("image", "docker/setup-qemu-action")["with"]["platforms"]


def test_the_image_is_pushed_to_the_owners_registry_under_the_checked_version():
    build = step_using("image", "docker/build-push-action")["with"]
    assert 'echo "image=ghcr.io/$owner/neuron-k8s"' in runs("version")
    assert build["push"] is True
    assert (
        build["tags"] == "${{ needs.version.outputs.image }}:${{ needs.version.outputs.version }}"
    )


def test_the_registry_names_are_the_owners_name_in_lowercase():
    assert "owner=${GITHUB_REPOSITORY_OWNER,,}" in runs("version")


def test_the_tag_is_checked_against_the_chart_before_anything_is_built_or_pushed():
    # An assignment of its own: a failed check inside `echo "...$(check)"` would not fail the step.
    assert 'version=$(bash scripts/release-version.sh "$RELEASE_TAG")\n' in runs("version")
    for job in ("gate", "image", "chart", "release"):
        assert "version" in needs(job), job
    assert "bash scripts/release-version.sh" in RELEASE_BUILD


def test_nothing_is_published_unless_the_lint_and_unit_gate_passed():
    assert "tox -e lint,unit" in runs("gate")
    for job in ("image", "chart", "release"):
        assert "gate" in needs(job), job


def test_the_gate_installs_the_tox_ci_installs():
    pin = re.search(r'"(tox==[^"]+)"', (REPO / ".ci" / "run").read_text())
    assert pin
    assert pin.group(1) in runs("gate")


def test_the_chart_release_build_packages_is_pushed_to_the_owners_oci_registry():
    assert f"helm package {script_var('CHART')} --destination dist" in runs("chart")
    assert 'echo "charts=oci://ghcr.io/$owner/charts"' in runs("version")
    push = next(s for s in JOBS["chart"]["steps"] if s.get("name") == "Push")
    assert push["env"]["CHART_REPOSITORY"] == "${{ needs.version.outputs.charts }}"
    assert 'helm push "dist/neuron-$VERSION.tgz" "$CHART_REPOSITORY"' in runs("chart")


def test_the_release_has_generated_notes_and_the_chart_attached():
    release = runs("release")
    assert re.search(r"gh release create .*\"dist/neuron-\$VERSION\.tgz\"", release)
    assert "--generate-notes" in release
    assert "--verify-tag" in release
    assert {"image", "chart"} <= needs("release")


def test_the_release_notes_say_nothing_is_signed():
    notes = (REPO / ".github" / "release-notes.md").read_text()
    assert ".github/release-notes.md" in runs("release")
    assert "Neither the image nor the chart is signed" in notes


def test_no_job_gets_a_permission_it_does_not_use():
    assert WORKFLOW["permissions"] == {}
    granted = {job: spec["permissions"] for job, spec in JOBS.items()}
    assert granted == {
        "version": {"contents": "read"},
        "gate": {"contents": "read"},
        "image": {"contents": "read", "packages": "write"},
        "chart": {"contents": "read", "packages": "write"},
        "release": {"contents": "write"},
    }


def test_no_checkout_keeps_the_token_in_the_clone():
    for job, spec in JOBS.items():
        for step in spec["steps"]:
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False, job


def test_every_action_is_pinned_to_a_commit_with_its_release_named():
    uses = re.findall(r"^\s*(?:- )?uses: (\S+)(.*)$", WORKFLOW_TEXT, re.M)
    assert len(uses) >= 8
    for ref, comment in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", ref), ref
        assert re.fullmatch(r"\s+# v\d+\.\d+\.\d+", comment), ref


@pytest.fixture
def release_tree(tmp_path: Path) -> Path:
    """The files the version check reads, in a tree of their own, versions set by the test."""
    for name in ("scripts/release-version.sh", "scripts/release-build.sh"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, tmp_path / name)
    (tmp_path / "charts/neuron").mkdir(parents=True)
    (tmp_path / "plugin-src").mkdir()
    return tmp_path


def set_versions(tree: Path, chart: str, app: str, package: str) -> None:
    (tree / "charts/neuron/Chart.yaml").write_text(
        f'apiVersion: v2\nname: neuron\nversion: {chart}\nappVersion: "{app}"\n'
    )
    (tree / "plugin-src/pyproject.toml").write_text(
        f'[project]\nname = "neuron-k8s"\nversion = "{package}"\n'
    )


def check(tree: Path, tag: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(tree / "scripts/release-version.sh"), tag],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_a_tag_equal_to_the_chart_app_and_package_versions_is_released(release_tree):
    set_versions(release_tree, "1.4.0", "1.4.0", "1.4.0")
    result = check(release_tree, "v1.4.0")
    assert (result.returncode, result.stdout) == (0, "1.4.0\n")


@pytest.mark.parametrize(
    ("versions", "named"),
    [
        (("1.3.0", "1.4.0", "1.4.0"), "Chart.yaml version is '1.3.0'"),
        (("1.4.0", "0.1.0", "1.4.0"), "Chart.yaml appVersion is '0.1.0'"),
        (("1.4.0", "1.4.0", "1.3.9"), "pyproject.toml version is '1.3.9'"),
    ],
)
def test_a_tag_any_version_disagrees_with_is_refused_naming_it(release_tree, versions, named):
    set_versions(release_tree, *versions)
    result = check(release_tree, "v1.4.0")
    assert result.returncode == 1
    assert named in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("tag", ["1.4.0", "v1.4", "vnext", "v1.4.0 "])
def test_a_tag_that_is_not_v_major_minor_patch_is_refused(release_tree, tag):
    set_versions(release_tree, "1.4.0", "1.4.0", "1.4.0")
    result = check(release_tree, tag)
    assert result.returncode == 1
    assert "is not vMAJOR.MINOR.PATCH" in result.stderr


def test_release_build_refuses_a_tag_before_building_anything(release_tree):
    set_versions(release_tree, "1.4.0", "0.1.0", "0.1.0")
    result = subprocess.run(
        ["bash", str(release_tree / "scripts/release-build.sh"), "v1.4.0"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert "appVersion is '0.1.0'" in result.stderr
    assert not (release_tree / "dist").exists()
