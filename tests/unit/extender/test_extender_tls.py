"""Mutual TLS between kube-scheduler and the extender: the verbs are served only to clients
whose certificate the extender's CA signed; probes and metrics have a plain port of their own
that serves no verb; rotated certificate files are picked up without a restart."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from extender_helpers import filter_args, make_node, make_pod, wait_for
from neuron_k8s.extender.server import ExtenderServer
from neuron_k8s.extender.tls import ServerTls
from neuron_k8s.extender.verbs import Extender
from neuron_k8s.kube import KubeClient


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(d: Path, name: str) -> None:
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
            "-out", f"{name}.crt", "-days", "1", "-subj", f"/CN={name}", cwd=d)  # fmt: skip


def make_cert(d: Path, name: str, ca: str, san: str = "IP:127.0.0.1,DNS:localhost") -> None:
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
            f"{name}.csr", "-subj", f"/CN={name}", cwd=d)  # fmt: skip
    (d / f"{name}.ext").write_text(f"subjectAltName={san}\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-out", f"{name}.crt", "-days", "1", "-extfile",
            f"{name}.ext", cwd=d)  # fmt: skip


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("openssl") is None:
        pytest.fail("the TLS tests need the openssl command (Debian package openssl)")
    d = tmp_path_factory.mktemp("pki")
    make_ca(d, "ca")
    make_ca(d, "other-ca")
    make_cert(d, "server", "ca")
    make_cert(d, "client", "ca")
    make_cert(d, "stranger", "other-ca")
    return d


@pytest.fixture
def served(api, cluster, pki: Path) -> Iterator[tuple[ExtenderServer, ExtenderServer]]:
    cluster.put("nodes", make_node("inf2-a"))
    extender = Extender(KubeClient.for_url(api.url))
    tls = ServerTls(str(pki / "server.crt"), str(pki / "server.key"), str(pki / "ca.crt"))
    verbs = ExtenderServer(extender, "127.0.0.1", 0, tls)
    probes = ExtenderServer(extender, "127.0.0.1", 0, probes_only=True, metrics=verbs.metrics)
    for s in (verbs, probes):
        s.poll_interval = 0.02
        s.start()
    extender.start()
    assert extender.wait_ready(5)
    yield verbs, probes
    for s in (verbs, probes):
        s.stop()
    extender.stop()


def client_context(pki: Path, cert: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    if cert is not None:
        ctx.load_cert_chain(str(pki / f"{cert}.crt"), str(pki / f"{cert}.key"))
    return ctx


def post_filter(port: int, ctx: ssl.SSLContext) -> int:
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    try:
        body = json.dumps(filter_args(make_pod("p"), ["inf2-a"])).encode()
        conn.request("POST", "/filter", body, {"Content-Type": "application/json"})
        return conn.getresponse().status
    finally:
        conn.close()


def test_a_client_with_a_certificate_of_the_ca_is_served(served, pki: Path) -> None:
    verbs, _ = served
    assert post_filter(verbs.port, client_context(pki, "client")) == 200


@pytest.mark.parametrize("cert", [None, "stranger"])
def test_a_client_without_a_certificate_of_the_ca_cannot_reach_the_verbs(
    served, pki: Path, cert: str | None
) -> None:
    verbs, _ = served
    with pytest.raises((ssl.SSLError, ConnectionError)):
        post_filter(verbs.port, client_context(pki, cert))


def test_plain_http_to_the_tls_port_gets_no_answer(served) -> None:
    verbs, _ = served
    conn = http.client.HTTPConnection("127.0.0.1", verbs.port, timeout=10)
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        conn.request("POST", "/bind", b"{}", {"Content-Type": "application/json"})
        conn.getresponse().read()
    conn.close()


def test_the_probe_port_answers_probes_and_metrics_and_no_verb(served) -> None:
    _, probes = served
    for path, status in (("/healthz", 200), ("/readyz", 200), ("/metrics", 200)):
        conn = http.client.HTTPConnection("127.0.0.1", probes.port, timeout=10)
        conn.request("GET", path)
        assert conn.getresponse().status == status, path
        conn.close()
    conn = http.client.HTTPConnection("127.0.0.1", probes.port, timeout=10)
    conn.request(
        "POST", "/bind", b"{}", {"Content-Type": "application/json", "Content-Length": "2"}
    )
    resp = conn.getresponse()
    assert resp.status == 404 and b"/bind" in resp.read()
    conn.close()


def test_rotated_certificate_files_are_used_without_a_restart(pki: Path, tmp_path: Path) -> None:
    for name in ("server.crt", "server.key", "ca.crt"):
        shutil.copy(pki / name, tmp_path / name)
    tls = ServerTls(
        str(tmp_path / "server.crt"),
        str(tmp_path / "server.key"),
        str(tmp_path / "ca.crt"),
        check_every=0.0,
    )
    first = tls()
    make_ca(tmp_path, "new-ca")
    make_cert(tmp_path, "new-server", "new-ca")
    os.replace(tmp_path / "new-server.crt", tmp_path / "server.crt")
    os.replace(tmp_path / "new-server.key", tmp_path / "server.key")
    os.replace(tmp_path / "new-ca.crt", tmp_path / "ca.crt")
    wait_for(lambda: tls() is not first, what="the new certificate loaded")
