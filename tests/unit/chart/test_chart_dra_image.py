"""The DRA driver's image (values block `dra.image`, and the implementation it runs) and its
fake-device mode (`dra.fake`)."""

import pytest
from chartlib import (
    container,
    env_of,
    merge,
    mounts,
    one,
    pod_spec,
    render,
    render_error,
    volumes,
    workload,
)
from dralib import FAKE_ENV, ON, daemonset, fake

# ---- the image ----------------------------------------------------------------------------------


def test_image_defaults_to_the_neuron_k8s_image_of_the_app_version(dra):
    assert container(one(dra, "DaemonSet", "dra"))["image"] == "neuron-k8s:0.1.0"


def test_image_is_pulled_if_not_present_by_default():
    block = {"implementation": "neuron-k8s", "image": {"repository": "reg.example/nk"}}
    # Without the chart tests' base, which loads the image (pullPolicy Never).
    objs = render({"dra": merge(ON, block)}, implementation=None)
    assert container(one(objs, "DaemonSet", "dra"))["imagePullPolicy"] == "IfNotPresent"


def test_global_image_registry_prefixes_the_image():
    obj = daemonset(**{"global": {"imageRegistry": "mirror.example.com/cache"}})
    assert container(obj)["image"] == "mirror.example.com/cache/neuron-k8s:0.1.0"


def test_global_image_registry_leaves_a_repository_with_a_registry_alone():
    # Before chart 0.12 it replaced the registry (mirror.example.com/neuron-k8s).
    obj = daemonset(
        {"image": {"repository": "111122223333.dkr.ecr.us-west-2.amazonaws.com/neuron-k8s"}},
        **{"global": {"imageRegistry": "mirror.example.com"}},
    )
    assert container(obj)["image"] == (
        "111122223333.dkr.ecr.us-west-2.amazonaws.com/neuron-k8s:0.1.0"
    )


def test_image_digest_pins_the_image_instead_of_the_tag():
    digest = "sha256:" + "ab" * 32
    obj = daemonset({"image": {"repository": "reg.example/nk", "tag": "9", "digest": digest}})
    assert container(obj)["image"] == f"reg.example/nk@{digest}"


def test_image_pull_secrets_add_to_the_global_ones():
    obj = daemonset(
        {"imagePullSecrets": [{"name": "dra"}]},
        **{"global": {"imagePullSecrets": [{"name": "all"}]}},
    )
    assert pod_spec(obj)["imagePullSecrets"] == [{"name": "all"}, {"name": "dra"}]


def test_this_projects_driver_beside_awss_device_plugin_keeps_its_image():
    values = {"dra": merge(ON, {"implementation": "neuron-k8s", "image": {"pullPolicy": "Never"}})}
    objs = render(values, implementation="aws")
    assert container(one(objs, "DaemonSet", "dra"))["image"] == "neuron-k8s:0.1.0"
    plugin = container(workload(objs, "devicePlugin"))["image"]
    assert plugin.startswith("public.ecr.aws/neuron/neuron-device-plugin:")


def test_awss_dra_driver_is_refused_with_a_sentence():
    error = render_error({"dra": ON}, implementation="aws")
    assert "the chart does not run AWS's DRA driver image" in error
    assert "Set dra.implementation=neuron-k8s" in error


def test_the_refusal_of_awss_dra_driver_points_at_awss_chart():
    # Failed before: it said AWS does not publish its driver's configuration, which its
    # neuron-helm-chart (1.9 and later, `draDriver`) does.
    error = render_error({"dra": ON}, implementation="aws")
    assert "does not publish" not in error
    assert "install AWS's driver with AWS's neuron-helm-chart (its draDriver values" in error


# ---- fake-device mode ---------------------------------------------------------------------------


def test_fake_mode_off_by_default_sets_no_fake_env(dra):
    assert not FAKE_ENV & env_of(one(dra, "DaemonSet", "dra")).keys()
    assert "fake-health" not in volumes(one(dra, "DaemonSet", "dra"))


def test_fake_instance_type_env():
    env = env_of(fake(instanceType="trn1.32xlarge"))
    assert env["NEURON_DRA_FAKE_INSTANCE_TYPE"] == "trn1.32xlarge"
    assert FAKE_ENV & env.keys() == {"NEURON_DRA_FAKE_INSTANCE_TYPE"}


def test_fake_instance_type_label_env():
    env = env_of(fake(instanceTypeLabel="node.kubernetes.io/instance-type"))
    assert env["NEURON_DRA_FAKE_INSTANCE_TYPE_LABEL"] == "node.kubernetes.io/instance-type"
    assert FAKE_ENV & env.keys() == {"NEURON_DRA_FAKE_INSTANCE_TYPE_LABEL"}


def test_fake_health_file_env_and_host_directory_mount():
    obj = fake(instanceType="trn1.2xlarge", healthFile="/var/lib/neuron-fake/unhealthy")
    assert env_of(obj)["NEURON_DRA_FAKE_HEALTH_FILE"] == "/var/lib/neuron-fake/unhealthy"
    assert volumes(obj)["fake-health"]["hostPath"] == {
        "path": "/var/lib/neuron-fake",
        "type": "DirectoryOrCreate",
    }
    assert mounts(obj)["fake-health"] == {
        "name": "fake-health",
        "mountPath": "/var/lib/neuron-fake",
        "readOnly": True,
    }


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        ({}, "none is set"),
        ({"instanceType": "trn1.2xlarge", "instanceTypeLabel": "x"}, "both are set"),
    ],
    ids=["none", "both"],
)
def test_fake_mode_needs_exactly_one_hardware_choice(settings, reason):
    error = render_error({"dra": merge(ON, {"fake": {"enabled": True, **settings}})})
    assert "dra.fake.enabled=true needs exactly one way to choose the fake hardware" in error
    assert reason in error


@pytest.mark.parametrize("settings", [{"instanceType": "trn1.2xlarge"}, {"healthFile": "/a/b"}])
def test_fake_settings_without_fake_enabled_are_refused(settings):
    error = render_error({"dra": merge(ON, {"fake": settings})})
    assert "dra.fake settings are given but dra.fake.enabled is false" in error


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("relative/unhealthy", "must be an absolute path"),
        ("/unhealthy", "must name a file inside a directory other than /"),
        ("/var/lib/neuron-fake/", "must name a file inside a directory other than /"),
    ],
)
def test_fake_health_file_must_be_a_file_below_a_host_directory(path, reason):
    block = {"fake": {"enabled": True, "instanceType": "trn1.2xlarge", "healthFile": path}}
    assert reason in render_error({"dra": merge(ON, block)})
