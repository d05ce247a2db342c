"""Certificates replaced mid-run, CA included (docs/security.md, "Rotation"): the extender
reloads its files, sees a new CA, and rolls my-scheduler, whose extender client loads its CA
only at start; Neuron pods keep scheduling with no manual step. The test prints how long
scheduling paused."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import time
from pathlib import Path

from conftest import NAMESPACE, NEURONCORE, RELEASE, Cluster, Pods, needs_kind, wait_for

SERVER = f"{RELEASE}-extender-tls"
CLIENT = f"{RELEASE}-scheduler-extender-client"
SCHEDULER = f"{RELEASE}-scheduler"
CA_ANNOTATION = "neuron.k8s.local/extender-ca"


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def new_certificates(tmp: Path, names: list[str]) -> dict[str, bytes]:
    """A new CA, and the extender's and my-scheduler's certificates signed by it."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
            "-subj", "/CN=neuron-e2e-rotated-ca", "-keyout", "ca.key", "-out", "ca.crt",
            cwd=tmp)  # fmt: skip
    (tmp / "server.ext").write_text("subjectAltName=" + ",".join(f"DNS:{n}" for n in names))
    (tmp / "client.ext").write_text("extendedKeyUsage=clientAuth")
    for side, subject in (("server", names[-1]), ("client", "my-scheduler")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={subject}",
                "-keyout", f"{side}.key", "-out", f"{side}.csr", cwd=tmp)  # fmt: skip
        openssl("x509", "-req", "-in", f"{side}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "30", "-extfile", f"{side}.ext",
                "-out", f"{side}.crt", cwd=tmp)  # fmt: skip
    return {p.name: p.read_bytes() for p in tmp.iterdir() if p.suffix in (".crt", ".key")}


def san_names(cluster: Cluster) -> list[str]:
    """The DNS names of the extender's current certificate (what my-scheduler dials)."""
    pem = base64.b64decode(cluster.core.read_namespaced_secret(SERVER, NAMESPACE).data["tls.crt"])
    text = subprocess.run(
        ["openssl", "x509", "-noout", "-ext", "subjectAltName"],
        input=pem, check=True, capture_output=True,
    ).stdout.decode()  # fmt: skip
    return [n.strip().removeprefix("DNS:") for n in text.splitlines()[-1].split(",")]


def replace(cluster: Cluster, name: str, crt: bytes, key: bytes, ca: bytes) -> None:
    data = {"tls.crt": crt, "tls.key": key, "ca.crt": ca}
    body = {"data": {k: base64.b64encode(v).decode() for k, v in data.items()}}
    cluster.core.patch_namespaced_secret(name, NAMESPACE, body)


def template_annotation(cluster: Cluster) -> str | None:
    deployment = cluster.apps.read_namespaced_deployment(SCHEDULER, NAMESPACE)
    return (deployment.spec.template.metadata.annotations or {}).get(CA_ANNOTATION)


def test_a_new_ca_rolls_my_scheduler_and_neuron_pods_keep_scheduling(
    cluster: Cluster, pods: Pods, tmp_path: Path
) -> None:
    needs_kind()
    certs = new_certificates(tmp_path, san_names(cluster))
    ca_hash = hashlib.sha256(certs["ca.crt"]).hexdigest()[:16]
    assert template_annotation(cluster) != ca_hash
    start = time.monotonic()
    replace(cluster, SERVER, certs["server.crt"], certs["server.key"], certs["ca.crt"])
    replace(cluster, CLIENT, certs["client.crt"], certs["client.key"], certs["ca.crt"])
    # The kubelet updates the mounted Secrets within its sync period; the extender reads its
    # files every 10 s and, seeing another CA, rolls my-scheduler.
    wait_for(
        "my-scheduler rolled for the new CA", lambda: template_annotation(cluster) == ca_hash, 180
    )
    rolled = time.monotonic()
    pods.create("after-rotation", [{NEURONCORE: 1}])
    pods.wait_running("after-rotation", 180)
    scheduled = time.monotonic()
    print(
        f"\nTLS rotation: extender saw the new CA after {rolled - start:.0f} s; a Neuron pod "
        f"created then ran {scheduled - rolled:.0f} s later"
    )
    # The pod went through the extender over TLS with the new CA: it holds an allocation.
    assert pods.allocation("after-rotation")["containers"]
