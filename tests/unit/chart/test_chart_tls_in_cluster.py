"""GitOps without drift (issue 21): with TLS mode `chart` the extender issues the certificates in
the cluster (plugin-src extender/clustercerts.py), so a render holds no key material, two
renders of the same values are byte-identical (Argo CD, Flux, `helm template`), and no key sits
in Helm's release records. What the extender needs for it is rendered and narrowed here."""

import pytest
from chartlib import (
    CHART,
    EXAMPLES,
    _template_args,
    env_of,
    objects_of,
    one,
    pod_spec,
    render,
    render_error,
    run_helm,
    volumes,
    workload,
)

CI_VALUES = CHART / "ci"
CASES = {
    "defaults": [],
    **{f"examples/{p.name}": [p.name] for p in sorted(EXAMPLES.glob("*.yaml"))},
    **{f"ci/{p.name}": [str(p)] for p in sorted(CI_VALUES.glob("*.yaml"))},
}
CA_SECRET, CLIENT_SECRET = "neuron-extender-tls-ca", "neuron-scheduler-client-cert"


def fresh_render(files: list[str]) -> str:
    """`helm template` run anew (a cached second render would prove nothing), offline, as a
    GitOps controller renders."""
    args = _template_args(None, files, (), "neuron-system", "neuron", "1.35.1")
    done = run_helm(tuple(args))
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("case", CASES)
def test_two_renders_of_the_same_values_are_byte_identical(case):
    assert fresh_render(CASES[case]) == fresh_render(CASES[case])


@pytest.mark.parametrize("case", CASES)
def test_no_render_holds_key_material(case):
    text = fresh_render(CASES[case])
    assert "PRIVATE KEY" not in text
    assert "BEGIN CERTIFICATE" not in text
    for secret in objects_of(render(files=CASES[case]), "Secret"):
        assert not {"tls.key", "ca.key"} & set(secret.get("data") or {}), secret["metadata"]


def test_chart_mode_has_the_extender_issue_into_memory_and_roll_the_scheduler():
    objs = render({"extender": {"tls": {"mode": "chart"}}})
    extender = workload(objs, "extender")
    env = env_of(extender)
    assert env["NEURON_EXTENDER_TLS_ISSUE_DIR"] == "/run/neuron-extender/tls"
    assert env["NEURON_EXTENDER_TLS_CA_SECRET"] == CA_SECRET
    assert env["NEURON_EXTENDER_TLS_CLIENT_SECRET"] == CLIENT_SECRET
    assert env["NEURON_EXTENDER_TLS_DNS_NAMES"] == (
        "neuron-extender,neuron-extender.neuron-system.svc,"
        "neuron-extender.neuron-system.svc.cluster.local"
    )
    assert env["NEURON_EXTENDER_TLS_CLIENT_NAME"] == "my-scheduler"
    assert env["NEURON_EXTENDER_SCHEDULER_DEPLOYMENT"] == "neuron-scheduler"
    assert "NEURON_EXTENDER_TLS_CERT_FILE" not in env
    assert volumes(extender)["tls"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "1Mi"}


def test_the_issued_lifetimes_come_from_the_values():
    tls = {"mode": "chart", "validityDays": 90, "caValidityDays": 1825, "renewBeforeDays": 20}
    env = env_of(workload(render({"extender": {"tls": tls}}), "extender"))
    assert env["NEURON_EXTENDER_TLS_VALIDITY_DAYS"] == "90"
    assert env["NEURON_EXTENDER_TLS_CA_VALIDITY_DAYS"] == "1825"
    assert env["NEURON_EXTENDER_TLS_RENEW_BEFORE_DAYS"] == "20"


def test_my_scheduler_mounts_the_client_secret_the_extender_writes():
    objs = render({"extender": {"tls": {"mode": "chart"}}})
    mounted = volumes(workload(objs, "scheduler"))["extender-client-tls"]["secret"]
    assert mounted["secretName"] == CLIENT_SECRET
    annotations = pod_spec(workload(objs, "scheduler")) and workload(objs, "scheduler")["spec"][
        "template"
    ]["metadata"].get("annotations", {})
    assert "checksum/tls" not in annotations


def test_the_extender_may_create_only_its_two_secrets():
    objs = render({"extender": {"tls": {"mode": "chart"}}})
    policy = next(
        p
        for p in objects_of(objs, "ValidatingAdmissionPolicy")
        if p["metadata"]["name"] == "neuron-extender-secrets"
    )
    assert policy["spec"]["matchConstraints"]["resourceRules"][0]["operations"] == ["CREATE"]
    assert policy["spec"]["matchConditions"][0]["expression"].endswith(
        '"system:serviceaccount:neuron-system:neuron-extender"'
    )
    assert policy["spec"]["validations"][0]["expression"] == (
        f'object.metadata.name in ["{CA_SECRET}", "{CLIENT_SECRET}"]'
    )


@pytest.mark.parametrize("mode", ["cert-manager", "disabled"])
def test_other_modes_give_the_extender_no_secret_access(mode):
    objs = render({"extender": {"tls": {"mode": mode}}})
    rules = one(objs, "Role", "extender")["rules"]
    assert not [r for r in rules if "secrets" in r["resources"]]
    names = {p["metadata"]["name"] for p in objects_of(objs, "ValidatingAdmissionPolicy")}
    assert "neuron-extender-secrets" not in names


def test_a_renewal_window_of_half_the_validity_is_refused_with_a_sentence():
    err = render_error({"extender": {"tls": {"mode": "chart", "validityDays": 40}}})
    assert "extender.tls.renewBeforeDays=30 must be less than half of" in err
    assert "extender.tls.validityDays=40" in err
