"""The pods' Neuron records (neuron.k8s.local/allocation, AWS_NEURON_IDS, NEURON_ALLOCATED,
NEURON_ALLOC_TIME) are written only by the stack: a ValidatingAdmissionPolicy, on wherever the
chart's admission policies are, refuses any identity but the chart's extender and device plugin
accounts creating a pod with them or changing them (docs/security.md). Its CEL is evaluated here
as the API server would (admission.py)."""

import pytest
from admission import admit, request
from chartlib import NAMESPACE, objects_of, pod_spec, render, workload

RECORDS = ["neuron.k8s.local/allocation", "AWS_NEURON_IDS", "NEURON_ALLOCATED", "NEURON_ALLOC_TIME"]
OWNER = "alice"
EXTENDER = f"system:serviceaccount:{NAMESPACE}:neuron-extender"
PLUGIN = f"system:serviceaccount:{NAMESPACE}:neuron-device-plugin"
RECORDED = {
    "neuron.k8s.local/allocation": '{"node":"n1","containers":{"app":{"neuroncore":[0,1]}}}',
    "AWS_NEURON_IDS": "0,1",
    "NEURON_ALLOCATED": "true",
    "NEURON_ALLOC_TIME": "1700000000000000000",
}


def records_policy(objs):
    found = objects_of(objs, "ValidatingAdmissionPolicy", "pod-records")
    return found[0] if found else None


def writers(policy):
    """The user names the match condition lets through, read back from its CEL list."""
    expression = policy["spec"]["matchConditions"][0]["expression"]
    listed = expression.split(" in ", 1)[1].strip("()[] ")
    return {name.strip('" ') for name in listed.split(",")}


def account(objs, component, namespace=NAMESPACE):
    """The user name of the account a component's pods run as."""
    name = pod_spec(workload(objs, component))["serviceAccountName"]
    return f"system:serviceaccount:{namespace}:{name}"


def pod(annotations=None, name="p"):
    meta = {"name": name, "namespace": "default"}
    if annotations is not None:
        meta["annotations"] = dict(annotations)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {"nodeName": "n1"}}


@pytest.fixture(scope="module")
def policy():
    found = records_policy(render())
    assert found is not None
    return found


# ---- rendered where the admission policies are ------------------------------------------------


@pytest.mark.parametrize("implementation", ["neuron-k8s", None], ids=["neuron-k8s", "aws"])
def test_the_records_policy_and_its_deny_binding_are_rendered_by_default(implementation):
    objs = render(implementation=implementation)
    policy = records_policy(objs)
    assert policy is not None
    (binding,) = [
        b
        for b in objects_of(objs, "ValidatingAdmissionPolicyBinding", "pod-records")
        if b["spec"]["policyName"] == policy["metadata"]["name"]
    ]
    assert binding["spec"]["validationActions"] == ["Deny"]


def test_the_records_policy_is_absent_when_disabled():
    objs = render({"admissionPolicies": {"podRecords": {"enabled": False}}})
    assert records_policy(objs) is None
    assert objects_of(objs, "ValidatingAdmissionPolicyBinding", "pod-records") == []
    assert objects_of(objs, "ValidatingAdmissionPolicy", "device-plugin")


def test_the_records_policy_is_absent_with_the_admission_policies_off():
    assert records_policy(render({"admissionPolicies": {"enabled": False}})) is None


def test_the_records_policy_is_absent_when_neither_the_plugin_nor_the_extender_runs():
    assert records_policy(render(files=["eks-dra.yaml"])) is None


def test_it_matches_the_pod_itself_on_create_and_update_only(policy):
    (rule,) = policy["spec"]["matchConstraints"]["resourceRules"]
    assert rule["apiGroups"] == [""] and rule["resources"] == ["pods"]
    assert sorted(rule["operations"]) == ["CREATE", "UPDATE"]


# ---- who may write -----------------------------------------------------------------------------


@pytest.mark.parametrize("implementation", ["neuron-k8s", "aws"])
def test_the_writers_are_the_accounts_the_extender_and_the_plugin_run_as(implementation):
    objs = render(
        {
            "namespaceOverride": "accel",
            "devicePlugin": {"serviceAccount": {"name": "dp-sa"}},
            "extender": {"serviceAccount": {"name": "ext-sa"}},
        },
        implementation=implementation,
    )
    ran_as = {account(objs, c, "accel") for c in ("devicePlugin", "extender")}
    assert ran_as == {"system:serviceaccount:accel:dp-sa", "system:serviceaccount:accel:ext-sa"}
    assert writers(records_policy(objs)) == ran_as


def test_the_writers_of_the_aws_compatible_names_are_awss_accounts():
    objs = render(files=["aws-compat.yaml"], namespace="kube-system", implementation=None)
    assert writers(records_policy(objs)) == {
        "system:serviceaccount:kube-system:neuron-device-plugin",
        "system:serviceaccount:kube-system:k8s-neuron-scheduler",
    }


def test_a_disabled_plugins_account_is_no_writer_and_extra_writers_are():
    external = "system:serviceaccount:kube-system:neuron-device-plugin"
    objs = render(
        {
            "devicePlugin": {"enabled": False},
            "admissionPolicies": {"podRecords": {"extraWriters": [external]}},
        }
    )
    assert writers(records_policy(objs)) == {account(objs, "extender"), external}


# ---- what the CEL decides ----------------------------------------------------------------------


@pytest.mark.parametrize("key", RECORDS)
def test_a_pod_owner_creating_a_pod_with_a_record_is_refused(policy, key):
    verdict = admit(policy, request("CREATE", OWNER, pod({key: RECORDED[key], "team": "a"})))
    assert not verdict.allowed
    assert verdict.message.startswith(f"A pod may not be created with the annotation {key}: ")
    assert EXTENDER in verdict.message and PLUGIN in verdict.message
    assert "\n" not in verdict.message


def test_a_controller_creating_pods_from_a_template_with_records_is_told_to_fix_the_template(
    policy,
):
    controller = "system:serviceaccount:kube-system:replicaset-controller"
    verdict = admit(policy, request("CREATE", controller, pod(RECORDED)))
    assert not verdict.allowed
    assert f"with the annotations {', '.join(RECORDS)}: " in verdict.message
    assert "from the pod template of the controller that creates it" in verdict.message


@pytest.mark.parametrize("annotations", [None, {}, {"team": "a"}], ids=["none", "empty", "other"])
def test_a_pod_owner_creating_a_pod_without_records_is_allowed(policy, annotations):
    assert admit(policy, request("CREATE", OWNER, pod(annotations))).allowed


@pytest.mark.parametrize("writer", [EXTENDER, PLUGIN], ids=["extender", "device-plugin"])
def test_the_stacks_accounts_write_records_unchecked(policy, writer):
    before, after = pod({"team": "a"}), pod({**RECORDED, "team": "a"})
    verdict = admit(policy, request("UPDATE", writer, after, before))
    assert verdict.allowed and not verdict.matched


@pytest.mark.parametrize(
    ("before", "after", "changed"),
    [
        ({}, {"AWS_NEURON_IDS": "0,1"}, "the annotation AWS_NEURON_IDS"),
        ({"AWS_NEURON_IDS": "0,1"}, {"AWS_NEURON_IDS": "2,3"}, "the annotation AWS_NEURON_IDS"),
        ({"NEURON_ALLOCATED": "false"}, {}, "the annotation NEURON_ALLOCATED"),
        (RECORDED, {}, "the annotations " + ", ".join(RECORDS)),
    ],
    ids=["added", "changed", "removed", "all-removed"],
)
def test_another_user_adding_changing_or_removing_a_record_is_refused(
    policy, before, after, changed
):
    verdict = admit(policy, request("UPDATE", OWNER, pod(after), pod(before)))
    assert not verdict.allowed
    assert verdict.message.endswith(f"and this update changes {changed}.")
    assert verdict.message.startswith(f"Only the Neuron device plugin ({PLUGIN}) and the Neuron")


def test_another_user_changing_an_unrelated_annotation_is_allowed(policy):
    before = pod({**RECORDED, "team": "a"})
    after = pod({**RECORDED, "team": "b", "new": "x"})
    assert admit(policy, request("UPDATE", OWNER, after, before)).allowed


def test_an_update_of_a_pod_without_annotations_is_allowed(policy):
    before, after = pod(None), pod(None)
    after["metadata"]["labels"] = {"x": "y"}
    assert admit(policy, request("UPDATE", OWNER, after, before)).allowed


@pytest.mark.parametrize("subresource", ["binding", "status"])
def test_bindings_and_status_writes_are_not_pod_updates(policy, subresource):
    # The extender's records arrive through a Binding; the kubelet writes pods/status.
    req = request("CREATE", "system:kube-scheduler", pod(RECORDED), subresource=subresource)
    assert not admit(policy, req).matched


def test_the_static_message_names_every_record_and_both_writers(policy):
    message = policy["spec"]["validations"][0]["message"]
    assert all(key in message for key in RECORDS)
    assert EXTENDER in message and PLUGIN in message
