"""docs/migration.md, run as written, from a cluster that Terraform built with AWS's manifests.

Terraform (cluster/build-terraform.sh: the machine's, or OpenTofu built from the Go module proxy)
applies AWS-shaped copies of the four manifests (aws_manifests.py) with the gavinbunney/kubectl
provider from a filesystem mirror, as the teams this chart is for did. Neuron pods start on
them. Then the guide's blocks run, in order, and each test checks what its step promises.

The tests of this module are steps of one migration and run in file order; each fails, naming
the step, when an earlier one did. Runs after test_90_lifecycle, with the suite's release gone:
AWS's objects take the same node sockets, scheduler name and cluster-wide names.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from adoption import Steps, holding, place_around, start_neuron_pods
from aws_manifests import ADOPTED, FILES, NAMESPACE, NOT_ADOPTED, render
from conftest import (
    NEURON,
    SHAPES,
    Cluster,
    Pods,
    contiguous,
    needs_kind,
    wait_for,
)
from guide import Guide

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM = ROOT / "cluster" / ".cache" / "terraform"
SEED = Path(__file__).resolve().parent / "terraform"
GUIDE = Guide(ROOT / "docs" / "migration.md")
RELEASE = "neuron"  # the guide's $RELEASE


@pytest.fixture(scope="module", autouse=True)
def release_running() -> None:
    """This module starts with no release of the chart: it brings up AWS's objects itself."""


class Migration(Steps):
    """The steps of the migration (adoption.Steps), with Terraform."""

    def terraform(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["terraform", *args], cwd=self.workdir, env=self.env, text=True, capture_output=True
        )
        assert result.returncode == 0, f"terraform {args}:\n{result.stdout}\n{result.stderr}"
        return result


def _kube_version(cluster: Cluster) -> str:
    return json.loads(cluster.kubectl("get", "--raw", "/version").stdout)["gitVersion"]


def _cli_config(path: Path) -> Path:
    """Providers come from the mirror and from nowhere else."""
    rc = path / "terraformrc"
    rc.write_text(
        "provider_installation {\n"
        f'  filesystem_mirror {{\n    path = "{TERRAFORM / "mirror"}"\n  }}\n'
        "}\n"
    )
    return rc


@pytest.fixture(scope="module")
def migration(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Migration]:
    needs_kind()
    if not (TERRAFORM / "bin" / "terraform").exists():
        pytest.fail(f"{TERRAFORM}/bin/terraform is missing: run cluster/build-terraform.sh")
    workdir = tmp_path_factory.mktemp("migration")
    (workdir / "charts").symlink_to(ROOT / "charts")
    shutil.copy(ROOT / "charts/neuron/examples/kind.yaml", workdir / "my-cluster.yaml")
    for tf in SEED.glob("*.tf"):
        shutil.copy(tf, workdir / tf.name)
    (workdir / "manifests").mkdir()
    for name, text in render(workdir / "my-cluster.yaml", _kube_version(cluster)).items():
        (workdir / "manifests" / name).write_text(text)
    env = dict(os.environ)
    env.update(
        PATH=f"{TERRAFORM / 'bin'}{os.pathsep}{env['PATH']}",
        KUBECONFIG=cluster.kubeconfig,
        KUBE_CONFIG_PATH=cluster.kubeconfig,
        TF_CLI_CONFIG_FILE=str(_cli_config(workdir)),
        TF_IN_AUTOMATION="1",
        TF_INPUT="0",
        CHECKPOINT_DISABLE="1",
    )
    ns = f"e2e-tf-{uuid.uuid4().hex[:6]}"
    cluster.core.create_namespace({"metadata": {"name": ns}})
    try:
        yield Migration(cluster, workdir, env, Pods(cluster, ns))
    finally:
        cluster.core.delete_collection_namespaced_pod(ns, grace_period_seconds=0)
        cluster.core.delete_namespace(ns)
        # Leave the cluster as the suite found it: whatever step the migration reached.
        cluster.helm(
            "uninstall", RELEASE, "-n", NAMESPACE, "--wait", "--timeout", "3m", check=False
        )
        for kind, name in [*ADOPTED, *NOT_ADOPTED]:
            cluster.kubectl("delete", kind, name, "-n", NAMESPACE, "--ignore-not-found", "--wait")


def _cores_per_device(cluster: Cluster, node: str) -> int:
    labels = cluster.core.read_node(node).metadata.labels
    return SHAPES[labels["node.kubernetes.io/instance-type"]][1]


def test_terraform_applies_awss_manifests_one_resource_per_object(migration: Migration) -> None:
    migration.terraform("init", "-no-color")
    migration.terraform("apply", "-auto-approve", "-no-color")
    state = migration.terraform("state", "list").stdout.split()
    assert len([a for a in state if a.startswith("kubectl_manifest.")]) == sum(
        len(objs) for objs in FILES.values()
    ), state
    migration.uids = migration.object_uids([*ADOPTED, *NOT_ADOPTED])
    assert all(migration.uids.values()), migration.uids
    migration.done.append("seed")


def test_neuron_pods_get_cores_from_awss_objects(migration: Migration) -> None:
    migration.needs("seed")

    def offered() -> bool:
        nodes = migration.cluster.neuron_nodes()
        return len(nodes) == len(SHAPES) and all(
            migration.cluster.allocatable(n)[1] > 0 for n in nodes
        )

    wait_for("Neuron cores offered by the manifests' device plugin", offered, 180)
    migration.held = start_neuron_pods(migration.pods)
    migration.done.append("pods")


def test_the_guide_finds_the_objects_and_previews_the_change(migration: Migration) -> None:
    migration.needs("seed")
    GUIDE.run("check", migration.workdir, migration.env)
    # The diff's file names end in <kind>.<namespace>.<name>, the namespace empty for
    # cluster-scoped objects; every adopted object changes, at least in its labels.
    changed = GUIDE.run("preview", migration.workdir, migration.env).stdout.splitlines()
    for kind, name in ADOPTED:
        assert any(
            f".{kind}.{NAMESPACE}.{name}\t" in line or f".{kind}..{name}\t" in line
            for line in changed
        ), (kind, name, changed)
    migration.done.append("preview")


def test_helm_adopts_every_object_keeping_its_uid(migration: Migration) -> None:
    migration.needs("preview")
    GUIDE.run("mark", migration.workdir, migration.env)
    GUIDE.run("install", migration.workdir, migration.env)
    GUIDE.run("verify", migration.workdir, migration.env)
    after = migration.object_uids(ADOPTED)
    assert after == {k: migration.uids[k] for k in ADOPTED}
    manifest = migration.cluster.helm("get", "manifest", RELEASE, "-n", NAMESPACE).stdout
    for kind, name in ADOPTED:
        assert f"kind: {kind}\nmetadata:\n  name: {name}\n" in manifest, (kind, name)
    migration.done.append("adopted")


def test_running_neuron_pods_keep_their_cores_and_annotations(migration: Migration) -> None:
    migration.needs("adopted")
    migration.needs("pods")
    for name, before in migration.held.items():
        assert holding(migration.pods, name) == before, name


def test_a_new_pod_is_placed_around_the_cores_held_before(migration: Migration) -> None:
    migration.needs("adopted")
    migration.needs("pods")
    place_around(migration.pods, migration.held)


def test_terraform_forgets_the_manifests_and_deletes_nothing(migration: Migration) -> None:
    migration.needs("adopted")
    listed = GUIDE.run("state-list", migration.workdir, migration.env).stdout.split()
    assert len(listed) == sum(len(objs) for objs in FILES.values()), listed
    (migration.workdir / "neuron-manifests.tf").unlink()
    (migration.workdir / "removed.tf").write_text(GUIDE.text("removed.tf"))
    migration.terraform("fmt", "-check", "removed.tf")
    forget = GUIDE.run("forget", migration.workdir, migration.env).stdout
    assert "0 to add, 0 to change, 0 to destroy" in forget, forget
    assert "No changes." in forget.split("Apply complete!")[-1], forget
    assert migration.terraform("state", "list").stdout.split() == []
    assert migration.object_uids([*ADOPTED, *NOT_ADOPTED]) == migration.uids
    migration.done.append("forgotten")


def test_after_the_clean_up_my_scheduler_still_places_pods(migration: Migration) -> None:
    migration.needs("forgotten")
    GUIDE.run("clean-up", migration.workdir, migration.env)
    assert migration.object_uids(sorted(NOT_ADOPTED)) == {k: "" for k in sorted(NOT_ADOPTED)}
    migration.pods.create("after-clean-up", [{NEURON: 1}])
    migration.pods.wait_running("after-clean-up", 180)
    node = migration.pods.get("after-clean-up").spec.node_name
    cores = migration.pods.cores("after-clean-up")
    assert len(cores) == _cores_per_device(migration.cluster, node) and contiguous(cores), cores
