"""my-scheduler's version and the replica counts: an explicit --kube-version equal to Helm's
default renders, a tag without its `v` and zero replicas are refused with a sentence (issue 21)."""

import pytest
from chartlib import container, helm, notes, render, render_error, workload

# Helm's own default version: that of the client library it was built with (v1.35 here).
HELM_DEFAULT = "v{}.0".format(
    helm("version", "--template", "{{ .KubeClientVersion }}").stdout.strip().lstrip("v")
)
WARNING = "the version Helm assumes when it is given none"


@pytest.mark.parametrize("given", [HELM_DEFAULT, HELM_DEFAULT.lstrip("v")])
def test_an_explicit_kube_version_equal_to_helms_default_renders(given):
    # Failed before: refused as "the cluster's version is unknown to this render".
    objs = render(kube_version=given)
    assert container(workload(objs, "scheduler"))["image"].endswith(f":{HELM_DEFAULT}")


def test_a_render_without_a_kube_version_renders_helms_default():
    # Helm cannot tell this render from the one above (every .Capabilities field is equal).
    objs = render(kube_version="")
    assert container(workload(objs, "scheduler"))["image"].endswith(f":{HELM_DEFAULT}")


def test_the_notes_warn_when_the_tag_is_helms_default_version():
    # helm install --dry-run=client asks no cluster and has no --kube-version.
    text = notes({"scheduler": {"image": {"tag": ""}}})
    assert f"my-scheduler runs kube-scheduler {HELM_DEFAULT}, {WARNING}" in text
    assert "set scheduler.image.tag" in text


def test_the_notes_do_not_warn_when_the_tag_is_set():
    assert WARNING not in notes({"scheduler": {"image": {"tag": "v1.36.1"}}})


@pytest.mark.parametrize("tag", ["1.36.1", "1.36.0-eks-abc"])
def test_a_scheduler_tag_without_its_v_is_refused(tag):
    # Failed before: rendered registry.k8s.io/kube-scheduler:1.36.1, which does not exist.
    error = render_error({"scheduler": {"image": {"tag": tag}}})
    assert f"scheduler.image.tag={tag} has no leading v" in error
    assert f"Set scheduler.image.tag=v{tag}" in error


def test_a_scheduler_tag_with_its_v_renders():
    objs = render({"scheduler": {"image": {"tag": "v1.36.1"}}})
    assert container(workload(objs, "scheduler"))["image"].endswith(":v1.36.1")


@pytest.mark.parametrize("component", ["extender", "scheduler"])
def test_zero_replicas_are_refused(component):
    # Failed before: accepted, a Deployment that runs nothing (with the extender's gone, every
    # Neuron pod waits).
    error = render_error({component: {"replicas": 0}})
    assert f"{component}.replicas=0 runs no {component}" in error
    assert f"set {component}.enabled=false" in error


def test_zero_replicas_of_a_disabled_component_are_not_refused():
    objs = render({"scheduler": {"enabled": False, "replicas": 0}})
    assert workload(objs, "extender")
