"""The chart's security rules (docs/security.md), for the defaults and every example values
file: each identity gets only the verbs its code calls, nothing cluster-wide that it does not
need, the admission policies that narrow the writes RBAC cannot, mutual TLS and a
NetworkPolicy in front of the extender, and the restricted Pod Security profile for the
extender and the scheduler."""

import pytest
from chartlib import (
    COMPONENTS,
    EXAMPLES,
    container,
    extender_service,
    notes,
    objects_of,
    one,
    pod_spec,
    render,
    render_error,
    workload,
)

CASES = {"defaults": [], **{p.stem: [p.name] for p in sorted(EXAMPLES.glob("*.yaml"))}}


@pytest.fixture(scope="module", params=sorted(CASES))
def objs(request):
    return render(files=CASES[request.param])


def running(*components):
    """The cases that run all these components (examples/eks-dra runs DRA alone): a test of a
    component is a case of each of them, none skipped."""
    return [
        case
        for case in sorted(CASES)
        if all(objects_of(render(files=CASES[case]), COMPONENTS[c][0], c) for c in components)
    ]


def rules(obj):
    return sorted(
        (tuple(r.get("apiGroups", [])), tuple(r["resources"]), tuple(sorted(r["verbs"])),
         tuple(r.get("resourceNames", [])))
        for r in obj["rules"]
    )  # fmt: skip


SLICE_VERBS = tuple(sorted(("list", "create", "update", "delete")))
# What each component's code calls, and where (docs/security.md has the same table).
CLUSTER_RULES = {
    "device-plugin": [
        (("",), ("nodes",), ("get", "patch"), ()),  # node.py: the instance-type label, health
        (("",), ("pods",), ("list", "patch", "watch"), ()),  # podview.py: watch, records
        (("",), ("nodes/status",), ("patch",), ()),  # the NeuronHealth condition
        (("",), ("events",), ("create",), ()),  # nodeevents.py: no driver, hardware error
    ],
    "extender": [
        (("",), ("nodes",), ("get", "list", "watch"), ()),  # verbs.py: the node watch
        (("",), ("pods",), ("get", "list", "watch"), ()),  # verbs.py, binding.py
        (("",), ("pods/binding", "bindings"), ("create",), ()),  # binding.py
        (("",), ("events",), ("create",), ()),  # events.py: a pod's record ignored
    ],
    "dra": [
        (("resource.k8s.io",), ("resourceslices",), SLICE_VERBS, ()),  # publisher.py
        (("resource.k8s.io",), ("resourceclaims",), ("list", "watch"), ()),  # claimcache.py
        (("",), ("pods",), ("list", "watch"), ()),  # podclaims.py: the metrics' containers
        (("",), ("nodes",), ("get",), ()),  # its own Node (the fake instance-type label)
        (("",), ("nodes/status",), ("patch",), ()),  # the NeuronHealth condition
        (("",), ("events",), ("create",), ()),  # publisher.py: partitions or taints refused
    ],
    # Upstream's image: its own Node, its NeuronHealth condition, an Event per problem.
    "node-problem-detector": [
        (("",), ("nodes",), ("get",), ()),
        (("",), ("nodes/status",), ("patch",), ()),
        (("",), ("events",), ("create", "patch"), ()),
    ],
}
# client-go's event recorder, in node-problem-detector, patches the count of a repeated Event.
PATCHES_EVENTS = {"node-problem-detector"}


def test_each_cluster_role_has_only_what_its_code_calls(objs):
    for role in objects_of(objs, "ClusterRole"):
        component = role["metadata"]["labels"]["app.kubernetes.io/component"]
        assert rules(role) == sorted(CLUSTER_RULES[component]), role["metadata"]["name"]


def test_nothing_may_touch_leases_configmaps_or_secrets_cluster_wide(objs):
    for role in objects_of(objs, "ClusterRole"):
        for rule in role["rules"]:
            assert not {"leases", "configmaps", "secrets"} & set(rule["resources"])


def test_events_may_only_be_created_cluster_wide_never_read_or_changed(objs):
    for role in objects_of(objs, "ClusterRole"):
        for rule in role["rules"]:
            if "events" in rule["resources"]:
                component = role["metadata"]["labels"]["app.kubernetes.io/component"]
                allowed = [["create"], ["create", "patch"]][component in PATCHES_EVENTS]
                assert rule["verbs"] == allowed, role["metadata"]["name"]


def test_no_wildcard_anywhere(objs):
    for role in objects_of(objs, "ClusterRole") + objects_of(objs, "Role"):
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] and "*" not in rule["resources"]


@pytest.mark.parametrize("case", running("scheduler"))
def test_the_schedulers_lease_rights_name_its_own_lease(case):
    objs = render(files=CASES[case])
    (role,) = [r for r in objects_of(objs, "Role", "scheduler")]
    named = [r for r in role["rules"] if r["verbs"] != ["create"]]
    assert named and all(r.get("resourceNames") for r in named)


@pytest.mark.parametrize("case", running("devicePlugin", "extender"))
def test_admission_policies_narrow_the_plugins_and_the_extenders_writes(case):
    objs = render(files=CASES[case])
    # One policy per component, and one keeping the status writes of each that has them to the
    # NeuronHealth condition of its own node (`-node-health`).
    policies = {
        (p["metadata"]["labels"]["app.kubernetes.io/component"], p["metadata"]["name"])
        for p in objects_of(objs, "ValidatingAdmissionPolicy")
    }
    health = {(c, n) for c, n in policies if n.endswith("-node-health")}
    dra = {"dra"} if objects_of(objs, "DaemonSet", "dra") else set()
    assert {c for c, _ in policies - health} == {"device-plugin", "extender", "pod-records"} | dra
    assert {c for c, _ in health} == {"device-plugin"} | dra
    bindings = {
        b["spec"]["policyName"] for b in objects_of(objs, "ValidatingAdmissionPolicyBinding")
    }
    assert bindings == {n for _, n in policies}
    by_name = {p["metadata"]["name"]: p for p in objects_of(objs, "ValidatingAdmissionPolicy")}
    policies = {c: by_name[n] for c, n in policies - health}
    for binding in objects_of(objs, "ValidatingAdmissionPolicyBinding"):
        assert binding["spec"]["validationActions"] == ["Deny"]
    plugin = policies["device-plugin"]["spec"]
    account = pod_spec(workload(objs, "devicePlugin"))["serviceAccountName"]
    assert f':{account}"' in plugin["matchConditions"][0]["expression"]
    text = str(plugin["variables"]) + str(plugin["validations"])
    assert "authentication.kubernetes.io/node-name" in text
    assert "object.spec == oldObject.spec" in text


def restricted(spec, c):
    pod = spec.get("securityContext") or {}
    sc = c.get("securityContext") or {}
    seccomp = (sc.get("seccompProfile") or pod.get("seccompProfile") or {}).get("type")
    return (
        (sc.get("runAsNonRoot") or pod.get("runAsNonRoot")) is True
        and sc.get("allowPrivilegeEscalation") is False
        and sc.get("readOnlyRootFilesystem") is True
        and sc.get("capabilities", {}).get("drop") == ["ALL"]
        and not sc.get("capabilities", {}).get("add")
        and seccomp == "RuntimeDefault"
        and not any(spec.get(k) for k in ("hostNetwork", "hostPID", "hostIPC"))
        and not any("hostPath" in v for v in spec.get("volumes", []))
    )


@pytest.mark.parametrize(
    ("case", "component"),
    [(case, c) for c in ("extender", "scheduler") for case in running(c)],
)
def test_extender_and_scheduler_meet_the_restricted_pod_security_profile(case, component):
    objs = render(files=CASES[case])
    obj = workload(objs, component)
    assert restricted(pod_spec(obj), container(obj)), component


@pytest.mark.parametrize("case", running("extender", "scheduler"))
def test_the_verbs_need_a_client_certificate_and_only_the_scheduler_reaches_them(case):
    objs = render(files=CASES[case])
    extender = workload(objs, "extender")
    env = {e["name"]: e.get("value") for e in container(extender)["env"]}
    # Files it reads (modes secrets, cert-manager), or certificates it issues (mode chart).
    assert env.get("NEURON_EXTENDER_TLS_CLIENT_CA_FILE", "").endswith("/ca.crt") or env.get(
        "NEURON_EXTENDER_TLS_ISSUE_DIR"
    )
    policy = one(objs, "NetworkPolicy", "extender")
    verbs, probes = policy["spec"]["ingress"]
    assert verbs["ports"] == [{"port": "http", "protocol": "TCP"}]
    scheduler_selector = workload(objs, "scheduler")["spec"]["selector"]["matchLabels"]
    assert verbs["from"] == [{"podSelector": {"matchLabels": scheduler_selector}}]
    assert probes["ports"] == [{"port": "probes", "protocol": "TCP"}]


@pytest.mark.parametrize("case", running("extender"))
def test_the_service_is_cluster_ip(case):
    objs = render(files=CASES[case])
    assert extender_service(objs)["spec"]["type"] == "ClusterIP"


@pytest.mark.parametrize("case", running("extender"))
def test_only_the_charts_scheduler_may_bind_through_the_extender(case):
    objs = render(files=CASES[case])
    env = {e["name"]: e.get("value") for e in container(workload(objs, "extender"))["env"]}
    assert env["NEURON_EXTENDER_SCHEDULER_NAME"] == "my-scheduler"


def test_user_secrets_are_mounted_and_nothing_is_issued():
    objs = render(
        {"extender": {"tls": {"mode": "secrets", "serverSecret": "srv", "clientSecret": "cli"}}}
    )
    assert objects_of(objs, "Secret") == []
    volumes = {v["name"]: v for v in pod_spec(workload(objs, "extender"))["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == "srv"
    volumes = {v["name"]: v for v in pod_spec(workload(objs, "scheduler"))["volumes"]}
    assert volumes["extender-client-tls"]["secret"]["secretName"] == "cli"


def test_cert_manager_issues_both_certificates_from_one_issuer():
    objs = render({"extender": {"tls": {"mode": "cert-manager"}}})
    certs = {c["spec"]["secretName"]: c["spec"] for c in objects_of(objs, "Certificate")}
    server = certs["neuron-extender-tls"]
    client = certs["neuron-scheduler-extender-client"]
    assert (
        server["issuerRef"]
        == client["issuerRef"]
        == {
            "name": "neuron-extender-ca",
            "kind": "Issuer",
            "group": "cert-manager.io",
        }
    )
    assert "neuron-extender.neuron-system.svc.cluster.local" in server["dnsNames"]
    assert server["usages"] == ["server auth"] and client["usages"] == ["client auth"]
    assert certs["neuron-extender-ca"]["isCA"] is True


def test_a_users_issuer_is_used_as_given():
    issuer = {"name": "corp-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}
    objs = render(
        {"extender": {"tls": {"mode": "cert-manager", "certManager": {"issuerRef": issuer}}}}
    )
    assert objects_of(objs, "Issuer") == []
    assert {c["spec"]["issuerRef"]["name"] for c in objects_of(objs, "Certificate")} == {"corp-ca"}


def test_plain_http_is_an_explicit_choice_and_the_notes_warn():
    objs = render({"extender": {"tls": {"mode": "disabled"}}})
    assert objects_of(objs, "Secret") == []
    text = notes({"extender": {"tls": {"mode": "disabled"}}})
    assert "WARNING: no mutual TLS between my-scheduler and the extender" in text
    assert "(extender.tls.mode=disabled)" in text


def test_another_service_type_needs_an_explicit_value():
    error = render_error({"extender": {"service": {"type": "LoadBalancer"}}})
    assert "extender.service.allowExternal=true" in error


def test_the_plugins_pod_security_needs_are_in_the_notes():
    assert 'Pod Security "privileged"' in notes()


def test_a_namespace_made_by_the_chart_allows_the_plugin():
    objs = render({"createNamespace": True, "namespaceOverride": "neuron-fresh"})
    ns = one(objs, "Namespace")
    assert ns["metadata"]["name"] == "neuron-fresh"
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
