"""Who the DRA driver's token lets it be (values block `dra`, templates/dra): its ClusterRole
holds exactly the calls its code makes, and the admission policy narrows its ResourceSlice
writes to its own node and driver."""

from chartlib import objects_of, one, pod_spec
from dralib import with_dra

# ---- RBAC ---------------------------------------------------------------------------------------


def test_cluster_role_has_exactly_the_calls_of_the_driver(dra):
    assert one(dra, "ClusterRole", "dra")["rules"] == [
        {
            "apiGroups": ["resource.k8s.io"],
            "resources": ["resourceslices"],
            "verbs": ["list", "create", "update", "delete"],
        },
        {
            "apiGroups": ["resource.k8s.io"],
            "resources": ["resourceclaims"],
            "verbs": ["list", "watch"],
        },
        # the pods of its node: which container uses each prepared claim (docs/metrics.md)
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch"]},
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["nodes/status"], "verbs": ["patch"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
    ]


def test_cluster_role_binding_binds_the_role_to_the_service_account(dra):
    binding = one(dra, "ClusterRoleBinding", "dra")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "neuron-dra",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "neuron-dra", "namespace": "neuron-system"}
    ]
    assert one(dra, "ServiceAccount", "dra")["metadata"]["namespace"] == "neuron-system"
    assert pod_spec(one(dra, "DaemonSet", "dra"))["serviceAccountName"] == "neuron-dra"


# ---- the admission policy -----------------------------------------------------------------------


def named(objs, kind, name="neuron-dra"):
    """The driver's object of that kind and name (beside it, `<name>-node-health`)."""
    (found,) = [o for o in objects_of(objs, kind, "dra") if o["metadata"]["name"] == name]
    return found


def policy(objs):
    return named(objs, "ValidatingAdmissionPolicy")["spec"]


def test_policy_matches_the_drivers_writes_of_resource_slices(dra):
    spec = policy(dra)
    assert spec["failurePolicy"] == "Fail"
    assert spec["matchConstraints"]["resourceRules"] == [
        {
            "apiGroups": ["resource.k8s.io"],
            "apiVersions": ["v1"],
            "operations": ["CREATE", "UPDATE", "DELETE"],
            "resources": ["resourceslices"],
        }
    ]
    (condition,) = spec["matchConditions"]
    assert condition["expression"] == (
        'request.userInfo.username == "system:serviceaccount:neuron-system:neuron-dra"'
    )


def test_policy_keys_on_the_node_named_in_the_pod_bound_token(dra):
    spec = policy(dra)
    variables = {v["name"]: v["expression"] for v in spec["variables"]}
    assert (
        'request.userInfo.extra["authentication.kubernetes.io/node-name"][0]' in (variables["node"])
    )
    # A delete is judged by the slice it removes, an update by the slice before and after.
    assert variables["slices"] == (
        'request.operation == "DELETE" ? [oldObject] : '
        'request.operation == "UPDATE" ? [object, oldObject] : [object]'
    )
    expressions = [v["expression"] for v in spec["validations"]]
    assert expressions == [
        'variables.node != ""',
        "variables.slices.all(s, has(s.spec.nodeName) && s.spec.nodeName == variables.node)",
        'variables.slices.all(s, s.spec.driver == "neuron.aws.com")',
    ]


def test_policy_messages_are_sentences(dra):
    validations = policy(dra)["validations"]
    assert validations[0]["message"] == (
        "The DRA driver's token names no node. It must use its pod's own service account token."
    )
    assert (
        "may create, update and delete only the ResourceSlices of that node."
        in (validations[1]["messageExpression"])
    )
    assert validations[2]["message"] == (
        "The DRA driver may create, update and delete only the ResourceSlices of its own"
        " driver, neuron.aws.com."
    )


def test_policy_binding_denies(dra):
    binding = named(dra, "ValidatingAdmissionPolicyBinding")
    assert binding["spec"] == {"policyName": "neuron-dra", "validationActions": ["Deny"]}


def test_policy_follows_the_driver_name_and_service_account():
    objs = with_dra({"driverName": "neuron.example.com", "serviceAccount": {"name": "drv"}})
    spec = policy(objs)
    assert ":neuron-system:drv" in spec["matchConditions"][0]["expression"]
    assert spec["validations"][2]["expression"].endswith('== "neuron.example.com")')


def test_no_policy_when_admission_policies_are_off():
    objs = with_dra(admissionPolicies={"enabled": False})
    assert objects_of(objs, "ValidatingAdmissionPolicy", "dra") == []
    assert objects_of(objs, "ValidatingAdmissionPolicyBinding", "dra") == []
