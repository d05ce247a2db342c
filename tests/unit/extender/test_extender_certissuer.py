"""The certificates the extender issues in the cluster (extender/certissuer.py): a CA that signs
leaves only, a server certificate for the Service's names, a client certificate for
my-scheduler, and the checks that decide whether a stored one is still good."""

from __future__ import annotations

import datetime as dt
import ssl
import tempfile
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from neuron_k8s.extender import certissuer
from neuron_k8s.extender.certissuer import KeyPair

NOW = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)
NAMES = ("neuron-extender", "neuron-extender.neuron.svc")
DAY = dt.timedelta(days=1)


@pytest.fixture(scope="module")
def ca() -> KeyPair:
    return certissuer.new_ca("neuron-extender-ca", NOW, 3650)


def test_a_leaf_is_signed_by_its_ca_and_not_by_another(ca: KeyPair) -> None:
    leaf = certissuer.sign_leaf(ca, "my-scheduler", NOW, 365, client=True)
    other = certissuer.new_ca("other", NOW, 3650)
    assert certissuer.signed_by(leaf.cert, ca.cert)
    assert not certissuer.signed_by(leaf.cert, other.cert)


def test_the_server_certificate_names_the_service(ca: KeyPair) -> None:
    leaf = certissuer.sign_leaf(ca, NAMES[-1], NOW, 365, dns_names=NAMES)
    assert certissuer.dns_names(leaf.cert) == NAMES
    usage = x509.load_pem_x509_certificate(leaf.cert).extensions.get_extension_for_class(
        x509.ExtendedKeyUsage
    )
    assert list(usage.value) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_the_client_certificate_is_for_client_authentication_only(ca: KeyPair) -> None:
    leaf = certissuer.sign_leaf(ca, "my-scheduler", NOW, 365, client=True)
    cert = x509.load_pem_x509_certificate(leaf.cert)
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert list(usage.value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert certissuer.dns_names(leaf.cert) == ()


def test_the_ca_may_sign_leaves_only(ca: KeyPair) -> None:
    constraints = x509.load_pem_x509_certificate(ca.cert).extensions.get_extension_for_class(
        x509.BasicConstraints
    )
    assert constraints.value.ca and constraints.value.path_length == 0


def test_a_leaf_never_outlives_its_ca() -> None:
    short_ca = certissuer.new_ca("short", NOW, 10)
    leaf = certissuer.sign_leaf(short_ca, "my-scheduler", NOW, 365, client=True)
    assert (
        x509.load_pem_x509_certificate(leaf.cert).not_valid_after_utc
        == x509.load_pem_x509_certificate(short_ca.cert).not_valid_after_utc
    )


def test_a_certificate_is_usable_until_the_renewal_window(ca: KeyPair) -> None:
    leaf = certissuer.sign_leaf(ca, "my-scheduler", NOW, 365, client=True)
    window = 30 * DAY
    assert certissuer.usable_for(leaf, NOW, window)
    assert certissuer.usable_for(leaf, NOW + 334 * DAY, window)
    assert not certissuer.usable_for(leaf, NOW + 336 * DAY, window)


def test_a_certificate_with_another_key_is_not_usable(ca: KeyPair) -> None:
    a = certissuer.sign_leaf(ca, "a", NOW, 365, client=True)
    b = certissuer.sign_leaf(ca, "b", NOW, 365, client=True)
    assert not certissuer.usable_for(KeyPair(a.cert, b.key), NOW, DAY)


@pytest.mark.parametrize(
    "cert, key",
    [(b"", b""), (b"not pem", b"not pem"), (b"-----BEGIN CERTIFICATE-----\nAAAA\n", b"x")],
)
def test_garbage_is_not_usable_and_raises_nothing(cert: bytes, key: bytes, ca: KeyPair) -> None:
    assert not certissuer.usable_for(KeyPair(cert, key), NOW, DAY)
    assert not certissuer.signed_by(cert, ca.cert)
    assert certissuer.dns_names(cert) == ()


def test_python_ssl_accepts_the_issued_pair_for_mutual_tls(ca: KeyPair) -> None:
    """The extender (ssl, server) and a client with the issued client certificate complete a
    handshake, each verifying the other against the CA."""
    server_leaf = certissuer.sign_leaf(ca, NAMES[-1], NOW, 365, dns_names=NAMES)
    client_leaf = certissuer.sign_leaf(ca, "my-scheduler", NOW, 365, client=True)
    with tempfile.TemporaryDirectory() as d:
        files = {}
        for name, content in {
            "srv.crt": server_leaf.cert,
            "srv.key": server_leaf.key,
            "cli.crt": client_leaf.cert,
            "cli.key": client_leaf.key,
            "ca.crt": ca.cert,
        }.items():
            (Path(d) / name).write_bytes(content)
            files[name] = str(Path(d) / name)
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.load_cert_chain(files["srv.crt"], files["srv.key"])
        server.load_verify_locations(files["ca.crt"])
        server.verify_mode = ssl.CERT_REQUIRED
        client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client.load_cert_chain(files["cli.crt"], files["cli.key"])
        client.load_verify_locations(files["ca.crt"])
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    c = client.wrap_bio(c_in, c_out, server_hostname=NAMES[1])
    s = server.wrap_bio(s_in, s_out, server_side=True)
    done = {"c": False, "s": False}
    for _ in range(10):
        for side, obj in (("c", c), ("s", s)):
            if not done[side]:
                try:
                    obj.do_handshake()
                    done[side] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            break
    assert all(done.values())
    peer = s.getpeercert()
    assert peer is not None
    assert peer["subject"] == ((("commonName", "my-scheduler"),),)
