"""The helm test hook: a deadline, and a test for installs that run the DRA driver without the
device plugin (issue 21)."""

import pytest
from chartlib import container, env_of, notes, objects_of, one, pod_spec, render
from dralib import ALONE

DRA_ALONE = {**ALONE, "dra": {"enabled": True}}


def hooks(values=None):
    return [o for o in render(values) if "helm.sh/hook" in o["metadata"].get("annotations", {})]


@pytest.mark.parametrize("values", [None, DRA_ALONE], ids=["device-plugin", "dra-alone"])
def test_the_test_pod_has_a_deadline(values):
    # Failed before: no activeDeadlineSeconds, so a hung test pod ran until helm gave up.
    pod = one(render(values), "Pod", "test")
    assert pod_spec(pod)["activeDeadlineSeconds"] == 300


def test_the_deadline_is_a_value():
    pod = one(render({"test": {"activeDeadlineSeconds": 60}}), "Pod", "test")
    assert pod_spec(pod)["activeDeadlineSeconds"] == 60


@pytest.fixture(scope="module")
def dra_hooks():
    return hooks(DRA_ALONE)


def test_a_dra_only_install_gets_a_test_pod_and_its_claim_template(dra_hooks):
    # Failed before: the test pod was rendered only with the device plugin.
    assert sorted(o["kind"] for o in dra_hooks) == ["Pod", "ResourceClaimTemplate"]


def test_the_claim_template_is_created_first_and_deleted_with_the_pod(dra_hooks):
    template = one(dra_hooks, "ResourceClaimTemplate", "test")
    annotations = template["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "test"
    assert int(annotations["helm.sh/hook-weight"]) < 0
    assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"


def test_the_claim_asks_for_one_device_of_the_drivers_class(dra_hooks):
    template = one(dra_hooks, "ResourceClaimTemplate", "test")
    assert template["apiVersion"] == "resource.k8s.io/v1"
    assert template["spec"]["spec"]["devices"]["requests"] == [
        {"name": "neuron", "exactly": {"deviceClassName": "neuron.aws.com", "count": 1}}
    ]


def test_the_dra_test_pod_uses_the_claim_and_no_extended_resource(dra_hooks):
    pod = one(dra_hooks, "Pod", "test")
    template = one(dra_hooks, "ResourceClaimTemplate", "test")
    assert pod_spec(pod)["resourceClaims"] == [
        {"name": "neuron", "resourceClaimTemplateName": template["metadata"]["name"]}
    ]
    resources = container(pod)["resources"]
    assert resources["claims"] == [{"name": "neuron"}]
    assert not any(k.startswith("aws.amazon.com/") for k in resources.get("limits", {}))
    assert "schedulerName" not in pod_spec(pod)


def test_the_dra_test_pod_checks_whole_device_cores(dra_hooks):
    env = env_of(one(dra_hooks, "Pod", "test"))
    assert (env["NEURON_TEST_RESOURCE"], env["NEURON_TEST_COUNT"]) == ("aws.amazon.com/neuron", "1")


def test_the_dra_test_follows_the_driver_name():
    objs = hooks({**DRA_ALONE, "dra": {"enabled": True, "driverName": "neuron.example.com"}})
    template = one(objs, "ResourceClaimTemplate", "test")
    exactly = template["spec"]["spec"]["devices"]["requests"][0]["exactly"]
    assert exactly["deviceClassName"] == "neuron.example.com"


def test_with_the_device_plugin_the_test_asks_the_device_plugin_only(dra):
    assert objects_of(dra, "ResourceClaimTemplate") == []
    pod = one(dra, "Pod", "test")
    assert "resourceClaims" not in pod_spec(pod)


def test_no_test_pod_when_turned_off_for_dra_only():
    assert hooks({**DRA_ALONE, "test": {"enabled": False}}) == []


def test_the_notes_tell_a_dra_only_install_to_run_helm_test():
    text = notes(DRA_ALONE)
    assert "helm test neuron -n neuron-system --logs" in text
    assert "claims one device of DeviceClass neuron.aws.com" in text
