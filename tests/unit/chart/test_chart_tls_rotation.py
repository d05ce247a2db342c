"""Certificate rotation without an outage: the extender is told my-scheduler's Deployment and may
roll it (kube-scheduler loads its CA only at start), and cert-manager's chart-made CA is
long-lived with its key kept, while the two leaves renew well before expiry."""

import pytest
from chartlib import env_of, objects_of, one, render, render_error, workload

SCHEDULER_DEPLOYMENT = "neuron-scheduler"
ENV = "NEURON_EXTENDER_SCHEDULER_DEPLOYMENT"


def tls(mode, **more):
    return {"extender": {"tls": {"mode": mode, **more}}}


def deployment_rules(objs):
    role = one(objs, "Role", "extender")
    return [r for r in role["rules"] if "deployments" in r["resources"]]


def certificates(objs):
    return {c["metadata"]["name"]: c["spec"] for c in objects_of(objs, "Certificate")}


@pytest.mark.parametrize("mode", ["chart", "cert-manager"])
def test_with_tls_the_extender_is_told_the_scheduler_deployment(mode):
    objs = render(tls(mode))
    assert one(objs, "Deployment", "scheduler")["metadata"]["name"] == SCHEDULER_DEPLOYMENT
    assert env_of(workload(objs, "extender"))[ENV] == SCHEDULER_DEPLOYMENT


def test_with_secrets_the_extender_is_told_the_scheduler_deployment():
    objs = render(tls("secrets", serverSecret="srv", clientSecret="cli"))
    assert env_of(workload(objs, "extender"))[ENV] == SCHEDULER_DEPLOYMENT


@pytest.mark.parametrize("mode", ["chart", "cert-manager"])
def test_with_tls_the_extender_may_get_and_patch_only_the_scheduler_deployment(mode):
    assert deployment_rules(render(tls(mode))) == [
        {
            "apiGroups": ["apps"],
            "resources": ["deployments"],
            "resourceNames": [SCHEDULER_DEPLOYMENT],
            "verbs": ["get", "patch"],
        }
    ]


def test_without_tls_the_extender_is_not_told_and_may_not_patch_deployments():
    objs = render(tls("disabled"))
    assert ENV not in env_of(workload(objs, "extender"))
    assert deployment_rules(objs) == []


def test_without_the_charts_scheduler_the_extender_is_not_told_and_may_not_patch():
    objs = render({**tls("chart"), "scheduler": {"enabled": False}})
    assert ENV not in env_of(workload(objs, "extender"))
    assert deployment_rules(objs) == []


def test_the_charts_cert_manager_ca_keeps_its_key_and_lives_ten_years():
    ca = certificates(render(tls("cert-manager")))["neuron-extender-ca"]
    assert ca["isCA"] is True
    assert ca["privateKey"]["rotationPolicy"] == "Never"
    assert ca["duration"] == "87600h"


def test_the_ca_duration_value():
    objs = render(tls("cert-manager", certManager={"caDuration": "43800h"}))
    assert certificates(objs)["neuron-extender-ca"]["duration"] == "43800h"


def test_the_leaves_renew_30_days_before_expiry_and_keep_their_duration():
    certs = certificates(render(tls("cert-manager")))
    leaves = [c for name, c in certs.items() if name != "neuron-extender-ca"]
    assert len(leaves) == 2
    for leaf in leaves:
        assert (leaf["duration"], leaf["renewBefore"]) == ("8760h", "720h")


def test_the_renew_before_and_duration_values():
    cm = {"duration": "2160h", "renewBefore": "360h"}
    certs = certificates(render(tls("cert-manager", certManager=cm)))
    leaves = [c for name, c in certs.items() if name != "neuron-extender-ca"]
    assert {(c["duration"], c["renewBefore"]) for c in leaves} == {("2160h", "360h")}


def test_a_users_issuer_leaves_renew_before_expiry_too():
    issuer = {"name": "corp-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}
    certs = certificates(render(tls("cert-manager", certManager={"issuerRef": issuer})))
    assert "neuron-extender-ca" not in certs
    assert {c["renewBefore"] for c in certs.values()} == {"720h"}


@pytest.mark.parametrize("renew_before", ["8760h", "9000h"])
def test_renew_before_not_shorter_than_duration_is_refused(renew_before):
    error = render_error(tls("cert-manager", certManager={"renewBefore": renew_before}))
    assert (
        f"extender.tls.certManager.renewBefore={renew_before} must be shorter than "
        "extender.tls.certManager.duration=8760h"
    ) in error


def test_renew_before_is_checked_only_in_cert_manager_mode():
    render(tls("chart", certManager={"renewBefore": "9000h"}))
