"""The images the chart pulls: this project's image is refused where no node can pull it, the
examples carry a placeholder the user fills in, and global.imageRegistry / imageRegistryMap
rewrite the chart's default repositories only (issue 21)."""

import pytest
from chartlib import (
    EXAMPLES,
    KUBE_VERSION,
    container,
    one,
    render,
    render_error,
    workload,
)

PULLED = {"pullPolicy": "IfNotPresent"}
ECR = "111122223333.dkr.ecr.us-west-2.amazonaws.com"
# This project's components, each on its own image block; the DRA driver beside the plugin.
OWN = ["devicePlugin", "extender", "dra"]
DRA_ON = {"enabled": True, "nodeSelector": {"neuron.k8s.local/dra": "true"}}


def pulled(**blocks):
    """Values pulling this project's image (the chart tests' base loads it: pullPolicy Never)."""
    values = {c: {"image": dict(PULLED)} for c in ("devicePlugin", "extender", "dra")}
    values["dra"].update(DRA_ON)
    for block, image in blocks.items():
        values[block]["image"].update(image)
    return values


def image_of(objs, component):
    return container(
        one(objs, "DaemonSet", "dra") if component == "dra" else workload(objs, component)
    )["image"]


# ---- refused where no node can pull it -------------------------------------------------------


def test_this_projects_image_without_a_registry_is_refused_with_a_sentence():
    # Failed before: rendered neuron-k8s:0.1.0, Docker Hub's library, which does not exist.
    error = render_error(pulled())
    for block in OWN:
        assert f'{block}.image.repository gives "neuron-k8s" (no registry host' in error
    assert "which no node can pull" in error
    setting = "devicePlugin.image.repository, extender.image.repository and dra.image.repository"
    assert f"set {setting} to it" in error
    assert "dra.image.pullPolicy=Never" in error


@pytest.mark.parametrize("component", OWN)
def test_each_component_is_refused_on_its_own(component):
    good = {c: {"repository": f"{ECR}/neuron-k8s"} for c in OWN if c != component}
    error = render_error(pulled(**good))
    assert f'{component}.image.repository gives "neuron-k8s"' in error
    assert [c for c in OWN if f"{c}.image.repository gives" in error] == [component]


@pytest.mark.parametrize(
    "repository",
    [
        "123456789012.dkr.ecr.us-west-2.amazonaws.com/neuron-k8s",
        "<account>.dkr.ecr.<region>.amazonaws.com/neuron-k8s",
    ],
)
def test_the_examples_placeholders_are_refused(repository):
    error = render_error(
        pulled(
            devicePlugin={"repository": repository},
            extender={"repository": f"{ECR}/n"},
            dra={"repository": f"{ECR}/n"},
        )
    )
    assert f'devicePlugin.image.repository gives "{repository}" (' in error
    assert "placeholder" in error


def test_a_placeholder_is_refused_with_awss_images_too():
    values = {
        "extender": {"image": {"repository": "123456789012.dkr.ecr.us-west-2.amazonaws.com/x"}}
    }
    error = render_error(values, implementation="aws")
    assert (
        'extender.image.repository gives "123456789012.dkr.ecr.us-west-2.amazonaws.com/x"' in error
    )


@pytest.mark.parametrize(
    "repository", [f"{ECR}/neuron-k8s", "localhost/neuron-k8s", "registry:5000/neuron-k8s"]
)
def test_a_repository_with_a_registry_host_is_pulled(repository):
    objs = render(pulled(**{c: {"repository": repository} for c in OWN}))
    for component in OWN:
        assert image_of(objs, component) == f"{repository}:0.1.0"


def test_global_image_registry_gives_the_default_repository_a_host():
    objs = render({**pulled(), "global": {"imageRegistry": ECR}})
    for component in OWN:
        assert image_of(objs, component) == f"{ECR}/neuron-k8s:0.1.0"


def test_pull_policy_never_loads_the_image_locally_and_is_not_refused():
    # The chart tests' base values: kind loads neuron-k8s:0.1.0 onto the nodes.
    objs = render({"dra": DRA_ON})
    for component in OWN:
        assert image_of(objs, component) == "neuron-k8s:0.1.0"


def test_the_helm_test_pod_on_this_projects_repository_is_refused():
    values = {"test": {"image": {"repository": "neuron-k8s"}}}
    error = render_error(values)
    assert 'test.image.repository gives "neuron-k8s" (no registry host' in error
    assert "test.image.pullPolicy=Never" in error


def test_the_helm_test_pods_other_images_need_no_host():
    pod = one(render({"test": {"image": {"repository": "python", "tag": "3.12"}}}), "Pod", "test")
    assert container(pod)["image"] == "python:3.12"


def test_awss_images_are_not_refused():
    objs = render(implementation="aws")
    assert image_of(objs, "devicePlugin").startswith("public.ecr.aws/neuron/")


# ---- the examples --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["eks-inf2.yaml", "eks-trn1.yaml", "eks-dra.yaml"])
def test_an_eks_example_as_shipped_asks_for_the_users_registry(name):
    # An absolute path renders the file as shipped (chartlib fills in names only).
    # Without the chart tests' base values, which load this project's image (pullPolicy Never).
    error = render_error(files=[EXAMPLES / name], implementation=None)
    assert '"<account>.dkr.ecr.<region>.amazonaws.com/neuron-k8s" (a placeholder)' in error


@pytest.mark.parametrize("name", ["eks-inf2.yaml", "eks-trn1.yaml", "eks-dra.yaml"])
def test_no_example_names_the_placeholder_account(name):
    assert "123456789012" not in (EXAMPLES / name).read_text()


# ---- global.imageRegistry and imageRegistryMap -----------------------------------------------

PULL_THROUGH = {
    "registry.k8s.io": f"{ECR}/k8s",
    "public.ecr.aws": f"{ECR}/ecr-public/",
}


def test_the_map_gives_each_default_image_its_upstreams_prefix():
    objs = render({"global": {"imageRegistryMap": PULL_THROUGH}}, implementation="aws")
    assert (
        image_of(objs, "devicePlugin") == f"{ECR}/ecr-public/neuron/neuron-device-plugin:2.32.0.0"
    )
    assert image_of(objs, "extender") == f"{ECR}/ecr-public/neuron/neuron-scheduler:2.32.0.0"
    assert image_of(objs, "scheduler") == f"{ECR}/k8s/kube-scheduler:{KUBE_VERSION}"
    test_pod = container(one(objs, "Pod", "test"))["image"]
    assert test_pod == f"{ECR}/ecr-public/docker/library/python:3.11-slim"


def test_the_map_wins_over_image_registry_for_the_hosts_it_names():
    values = {
        "global": {
            "imageRegistry": "mirror.example.com",
            "imageRegistryMap": {"registry.k8s.io": f"{ECR}/k8s"},
        }
    }
    objs = render(values, implementation="aws")
    assert image_of(objs, "scheduler") == f"{ECR}/k8s/kube-scheduler:{KUBE_VERSION}"
    assert (
        image_of(objs, "devicePlugin") == "mirror.example.com/neuron/neuron-device-plugin:2.32.0.0"
    )


def test_a_repository_set_with_a_host_is_left_alone():
    # Failed before: global.imageRegistry replaced the host of every repository, explicit ones
    # included (mirror.example.com/kube-scheduler).
    values = {
        "global": {"imageRegistry": "mirror.example.com", "imageRegistryMap": PULL_THROUGH},
        "scheduler": {"image": {"repository": "quay.example/k/kube-scheduler"}},
        "extender": {"image": {"repository": f"{ECR}/neuron-k8s"}},
    }
    objs = render(values)
    assert image_of(objs, "scheduler") == f"quay.example/k/kube-scheduler:{KUBE_VERSION}"
    assert image_of(objs, "extender") == f"{ECR}/neuron-k8s:0.1.0"


def test_the_default_repository_written_out_is_still_the_default():
    values = {
        "global": {"imageRegistryMap": PULL_THROUGH},
        "scheduler": {"image": {"repository": "registry.k8s.io/kube-scheduler"}},
    }
    assert image_of(render(values), "scheduler") == f"{ECR}/k8s/kube-scheduler:{KUBE_VERSION}"


def test_a_repository_set_without_a_host_gets_image_registry_in_front():
    values = {
        "global": {"imageRegistry": ECR},
        "extender": {"image": {"repository": "team/nk", **PULLED}},
    }
    assert image_of(render(values), "extender") == f"{ECR}/team/nk:0.1.0"


def test_a_map_key_that_is_no_registry_host_is_refused_by_the_schema():
    error = render_error({"global": {"imageRegistryMap": {"registry.k8s.io/x": "r.example"}}})
    assert "invalid propertyName 'registry.k8s.io/x'" in error
