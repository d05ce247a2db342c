"""A new CA mid-run (docs/security.md, "Rotating the certificates"): in TLS mode `chart` the
extender issues the certificates in the cluster; the documented way to force a new CA (delete
its Secret, restart the extender) makes it issue a new CA, re-sign my-scheduler's certificate
and roll my-scheduler, whose extender client loads its CA only at start; Neuron pods keep
scheduling with no other step. The test prints how long that took."""

from __future__ import annotations

import base64
import hashlib
import time

from conftest import NAMESPACE, NEURONCORE, RELEASE, Cluster, Pods, needs_kind, wait_for

CA_SECRET = f"{RELEASE}-extender-tls-ca"
CLIENT = f"{RELEASE}-scheduler-client-cert"
EXTENDER = f"{RELEASE}-extender"
SCHEDULER = f"{RELEASE}-scheduler"
CA_ANNOTATION = "neuron.k8s.local/extender-ca"


def secret_data(cluster: Cluster, name: str) -> dict[str, bytes] | None:
    try:
        data = cluster.core.read_namespaced_secret(name, NAMESPACE).data or {}
    except Exception as err:  # kubernetes' ApiException: absent while being made again
        if getattr(err, "status", None) == 404:
            return None
        raise
    return {k: base64.b64decode(v) for k, v in data.items()}


def template_annotation(cluster: Cluster) -> str | None:
    deployment = cluster.apps.read_namespaced_deployment(SCHEDULER, NAMESPACE)
    return (deployment.spec.template.metadata.annotations or {}).get(CA_ANNOTATION)


def test_the_extender_keeps_its_ca_and_my_schedulers_certificate_in_two_secrets(
    cluster: Cluster,
) -> None:
    needs_kind()
    ca, client = secret_data(cluster, CA_SECRET), secret_data(cluster, CLIENT)
    assert ca is not None and client is not None
    assert set(client) == {"tls.crt", "tls.key", "ca.crt"}
    assert client["ca.crt"] == ca["tls.crt"]
    assert client["tls.key"] != ca["tls.key"]


def test_no_key_is_in_helms_release_records(cluster: Cluster) -> None:
    needs_kind()
    for what in ("manifest", "hooks", "values"):
        args = ["get", what, RELEASE, "-n", NAMESPACE] + (["--all"] if what == "values" else [])
        text = cluster.helm(*args).stdout
        assert "PRIVATE KEY" not in text and "tls.key:" not in text, what


def test_a_new_ca_rolls_my_scheduler_and_neuron_pods_keep_scheduling(
    cluster: Cluster, pods: Pods
) -> None:
    needs_kind()
    old = secret_data(cluster, CA_SECRET)
    assert old is not None
    start = time.monotonic()
    cluster.core.delete_namespaced_secret(CA_SECRET, NAMESPACE)
    cluster.kubectl("rollout", "restart", f"deployment/{EXTENDER}", "-n", NAMESPACE)

    def new_ca() -> bytes | None:
        data = secret_data(cluster, CA_SECRET)
        return data["tls.crt"] if data and data.get("tls.crt") != old["tls.crt"] else None

    wait_for("the extender issued a new CA", lambda: new_ca() is not None, 180)
    ca = new_ca()
    assert ca is not None
    ca_hash = hashlib.sha256(ca).hexdigest()[:16]
    wait_for(
        "my-scheduler rolled for the new CA", lambda: template_annotation(cluster) == ca_hash, 180
    )
    rolled = time.monotonic()
    client = secret_data(cluster, CLIENT)
    assert client is not None and client["ca.crt"] == ca
    pods.create("after-rotation", [{NEURONCORE: 1}])
    pods.wait_running("after-rotation", 180)
    scheduled = time.monotonic()
    print(
        f"\nTLS rotation: my-scheduler rolled {rolled - start:.0f} s after the CA was deleted; "
        f"a Neuron pod created then ran {scheduled - rolled:.0f} s later"
    )
    # The pod went through the extender over TLS with the new CA: it holds an allocation.
    assert pods.allocation("after-rotation")["containers"]
