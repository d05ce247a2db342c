"""docs/migration.md, "From AWS's neuron-helm-chart", Route 2, run as written: a cluster running
an AWS-shaped release of AWS's chart (aws_chart.py) with Neuron pods on it is handed to this
chart's release; every object keeps its uid, the running pods keep their cores, annotations and
containers, and my-scheduler keeps placing pods.

The tests are steps of one adoption and run in file order; each fails, naming the step, when an
earlier one did. Runs after test_95, with the suite's release gone: AWS's objects take the same
node sockets, scheduler name and cluster-wide names.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from adoption import Steps, holding, place_around, start_neuron_pods
from aws_chart import ADOPTED, AWS_RELEASE, NAMESPACE, NOT_ADOPTED, OBJECTS, write_chart
from conftest import NEURON, Cluster, Pods, needs_kind, wait_for
from guide import Guide

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "charts" / "neuron" / "examples"
GUIDE = Guide(ROOT / "docs" / "migration.md")
ENV_BLOCK = "aws-chart-env"
RELEASE = "neuron"  # the guide's $RELEASE
AWS_NS = "default"  # the guide's $AWS_NS


@pytest.fixture(scope="module", autouse=True)
def release_running() -> None:
    """This module starts with no release of the chart: it brings up AWS's objects itself."""


class Adoption(Steps):
    """The steps of the adoption (adoption.Steps), with the guide's blocks."""

    def run(self, block: str) -> str:
        return GUIDE.run(block, self.workdir, self.env, env_block=ENV_BLOCK).stdout


def _my_cluster_values() -> dict[str, Any]:
    """The user's values: the kind example in real mode, the device plugin only (AWS's chart
    runs no DRA driver beside its plugin)."""
    values: dict[str, Any] = {}
    for name in ("kind.yaml", "kind-real-mode.yaml"):
        _merge(values, yaml.safe_load((EXAMPLES / name).read_text()) or {})
    _merge(values, {"dra": {"enabled": False}})
    return values


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


@pytest.fixture(scope="module")
def adoption(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Adoption]:
    needs_kind()
    workdir = tmp_path_factory.mktemp("aws-chart")
    (workdir / "charts").symlink_to(ROOT / "charts")
    (workdir / "my-cluster.yaml").write_text(yaml.safe_dump(_my_cluster_values()))
    version = json.loads(cluster.kubectl("get", "--raw", "/version").stdout)["gitVersion"]
    write_chart(workdir / "aws-chart", [workdir / "my-cluster.yaml"], version)
    env = dict(os.environ)
    env["KUBECONFIG"] = cluster.kubeconfig
    ns = f"e2e-aws-chart-{uuid.uuid4().hex[:6]}"
    cluster.core.create_namespace({"metadata": {"name": ns}})
    try:
        yield Adoption(cluster, workdir, env, Pods(cluster, ns))
    finally:
        cluster.core.delete_collection_namespaced_pod(ns, grace_period_seconds=0)
        cluster.core.delete_namespace(ns)
        # Leave the cluster as the suite found it: whatever step the adoption reached.
        for release, namespace in ((RELEASE, NAMESPACE), (AWS_RELEASE, AWS_NS)):
            cluster.helm("uninstall", release, "-n", namespace, "--wait", "--timeout", "3m",
                         check=False)  # fmt: skip
        for kind, name in OBJECTS:
            cluster.kubectl("delete", kind, name, "-n", NAMESPACE, "--ignore-not-found", "--wait")


def test_awss_chart_release_runs_and_places_neuron_pods(adoption: Adoption) -> None:
    a = adoption
    a.cluster.helm("install", AWS_RELEASE, str(a.workdir / "aws-chart"), "-n", AWS_NS,
                   "--wait", "--timeout", "5m")  # fmt: skip
    a.uids = a.object_uids(OBJECTS)
    assert all(a.uids.values()), a.uids

    def offered() -> bool:
        nodes = a.cluster.neuron_nodes()
        return bool(nodes) and all(a.cluster.allocatable(n)[1] > 0 for n in nodes)

    wait_for("Neuron cores offered by AWS's release's device plugin", offered, 180)
    a.held = start_neuron_pods(a.pods)
    a.done.append("seed")


def test_the_guide_reads_awss_release_and_previews_no_selector_change(adoption: Adoption) -> None:
    adoption.needs("seed")
    names = adoption.run("aws-chart-read")
    written = yaml.safe_load((adoption.workdir / "aws-chart-names.yaml").read_text())
    assert written["devicePlugin"]["selectorLabelsOverride"] == {
        "app.kubernetes.io/instance": AWS_RELEASE,
        "app.kubernetes.io/name": "neuron-device-plugin",
    }, names
    adoption.run("aws-chart-preview")
    assert "neuron-device-plugin" in (adoption.workdir / "adopting.diff").read_text()
    adoption.done.append("preview")


def test_the_preview_refuses_names_whose_selector_differs(adoption: Adoption) -> None:
    adoption.needs("preview")
    wrong = adoption.workdir / "wrong-selector"
    wrong.mkdir()
    for name in ("charts", "my-cluster.yaml"):
        (wrong / name).symlink_to(adoption.workdir / name)
    names = yaml.safe_load((adoption.workdir / "aws-chart-names.yaml").read_text())
    names["devicePlugin"]["selectorLabelsOverride"] = {"name": "neuron-device-plugin-ds"}
    (wrong / "aws-chart-names.yaml").write_text(yaml.safe_dump(names))
    result = GUIDE.run("aws-chart-preview", wrong, adoption.env, check=False, env_block=ENV_BLOCK)
    assert result.returncode != 0 and "field is immutable" in result.stderr, result.stderr


def test_helm_adopts_every_object_keeping_its_uid(adoption: Adoption) -> None:
    a = adoption
    a.needs("preview")
    a.run("aws-chart-adopt")
    assert a.object_uids(ADOPTED) == {k: a.uids[k] for k in ADOPTED}
    releases = a.cluster.helm("list", "-A", "-o", "json").stdout
    assert {(r["name"], r["namespace"]) for r in json.loads(releases)} == {(RELEASE, NAMESPACE)}
    manifest = a.cluster.helm("get", "manifest", RELEASE, "-n", NAMESPACE).stdout
    for kind, name in ADOPTED:
        assert f"kind: {kind}\nmetadata:\n  name: {name}\n" in manifest, (kind, name)
    a.done.append("adopted")


def test_running_neuron_pods_keep_their_cores_annotations_and_containers(
    adoption: Adoption,
) -> None:
    adoption.needs("adopted")
    for name, before in adoption.held.items():
        assert holding(adoption.pods, name) == before, name


def test_a_new_pod_is_placed_around_the_cores_held_before(adoption: Adoption) -> None:
    a = adoption
    a.needs("adopted")
    place_around(a.pods, a.held)
    a.done.append("placed")


def test_after_the_clean_up_my_scheduler_still_places_pods(adoption: Adoption) -> None:
    a = adoption
    a.needs("placed")
    a.run("aws-chart-clean-up")
    assert a.object_uids(sorted(NOT_ADOPTED)) == {k: "" for k in sorted(NOT_ADOPTED)}
    a.pods.create("after-clean-up", [{NEURON: 1}])
    a.pods.wait_running("after-clean-up", 180)
    assert a.pods.cores("after-clean-up")
