"""The `-node-health` admission policies: the device plugin, the DRA driver and
node-problem-detector may patch Node status (RBAC's nodes/status, for every node and field) only
to write the NeuronHealth condition of the node their pod-bound token names. Evaluated as the
API server evaluates them (admission.py)."""

import pytest
from admission import admit, request
from chartlib import objects_of, render
from dralib import ON

# component label -> (values that render it, its service account)
WRITERS = {
    "device-plugin": ({}, None, "neuron-device-plugin"),
    "dra": ({"dra": ON}, None, "neuron-dra"),
    "node-problem-detector": ({}, "aws", "neuron-node-problem-detector"),
}
NODE = "ip-10-0-0-1"


def policy(component):
    values, implementation, _ = WRITERS[component]
    objs = render(values, **({"implementation": implementation} if implementation else {}))
    (found,) = [
        p
        for p in objects_of(objs, "ValidatingAdmissionPolicy", component)
        if p["metadata"]["name"].endswith("-node-health")
    ]
    return found


def node(name=NODE, neuron_health="False"):
    return {
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {"providerID": "aws:///us-east-1a/i-0"},
        "status": {
            "capacity": {"aws.amazon.com/neuron": "16"},
            "allocatable": {"aws.amazon.com/neuron": "16"},
            "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "KubeletReady"},
                {"type": "NeuronHealth", "status": neuron_health, "reason": "NeuronHasNoError"},
            ],
            "nodeInfo": {"kubeletVersion": "v1.37.0"},
        },
    }


def status_patch(component, before, after, token_node=NODE):
    req = request(
        "UPDATE",
        f"system:serviceaccount:neuron-system:{WRITERS[component][2]}",
        after,
        before,
        resource="nodes",
        subresource="status",
    )
    if token_node:
        req["userInfo"]["extra"] = {"authentication.kubernetes.io/node-name": [token_node]}
    return admit(policy(component), req)


def changed(mutate, name=NODE):
    after = node(name)
    mutate(after)
    return after


def neuron_error(n):
    n["status"]["conditions"][1] = {
        "type": "NeuronHealth",
        "status": "True",
        "reason": "NeuronHardwareError",
    }


@pytest.mark.parametrize("component", sorted(WRITERS))
def test_its_own_nodes_neuron_health_condition_may_be_written(component):
    verdict = status_patch(component, node(), changed(neuron_error))
    assert verdict.matched and verdict.allowed


@pytest.mark.parametrize("component", sorted(WRITERS))
def test_another_nodes_status_is_refused(component):
    other = "ip-10-0-0-2"
    verdict = status_patch(component, node(other), changed(neuron_error, other))
    assert not verdict.allowed
    assert f"on node {NODE} may change the status of that node only." in verdict.message


@pytest.mark.parametrize("component", sorted(WRITERS))
def test_a_token_without_a_node_is_refused(component):
    verdict = status_patch(component, node(), changed(neuron_error), token_node=None)
    assert not verdict.allowed
    assert "token names no node" in verdict.message


def ready_false(n):
    n["status"]["conditions"][0]["status"] = "False"


def more_capacity(n):
    n["status"]["capacity"]["aws.amazon.com/neuron"] = "32"


def other_address(n):
    n["status"]["addresses"] = [{"type": "InternalIP", "address": "10.9.9.9"}]


def extra_condition(n):
    n["status"]["conditions"].append({"type": "MemoryPressure", "status": "True"})


@pytest.mark.parametrize("component", sorted(WRITERS))
@pytest.mark.parametrize("mutate", [ready_false, more_capacity, other_address, extra_condition])
def test_any_other_status_change_is_refused(component, mutate):
    verdict = status_patch(component, node(), changed(mutate))
    assert not verdict.allowed
    assert "may change only the NeuronHealth condition of its node's status." in verdict.message


@pytest.mark.parametrize("component", sorted(WRITERS))
def test_labels_may_not_change_through_the_status(component):
    after = node()
    after["metadata"]["labels"]["node-role"] = "x"
    verdict = status_patch(component, node(), after)
    assert not verdict.allowed
    assert "may not change a node's labels or annotations" in verdict.message


@pytest.mark.parametrize("component", sorted(WRITERS))
def test_only_the_components_own_account_is_matched(component):
    req = request(
        "UPDATE", "system:node:ip-10-0-0-1", changed(ready_false), node(), "nodes", "status"
    )
    assert not admit(policy(component), req).matched


@pytest.mark.parametrize("component", sorted(WRITERS))
def test_the_node_object_itself_is_not_matched(component):
    account = f"system:serviceaccount:neuron-system:{WRITERS[component][2]}"
    req = request("UPDATE", account, changed(neuron_error), node(), resource="nodes")
    assert not admit(policy(component), req).matched


@pytest.mark.parametrize(("kube_version", "present"), [("1.34.9", False), ("1.35.1", True)])
def test_the_policy_names_declared_features_only_where_the_node_status_has_them(
    kube_version, present
):
    """NodeStatus.declaredFeatures is new in 1.35: on 1.34 the API server's type check would
    flag an expression naming it."""
    objs = render({}, kube_version=kube_version)
    (found,) = [
        p
        for p in objects_of(objs, "ValidatingAdmissionPolicy", "device-plugin")
        if p["metadata"]["name"].endswith("-node-health")
    ]
    expressions = " ".join(v["expression"] for v in found["spec"]["validations"])
    assert ("declaredFeatures" in expressions) is present
    assert "runtimeHandlers" in expressions
