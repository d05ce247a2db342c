"""Certificates for the extender's mutual TLS with my-scheduler, issued in the cluster rather than
at render time (docs/security.md, "mode chart"): a CA, the extender's server certificate and
my-scheduler's client certificate. Pure: no I/O; time comes from the caller.

Keys are ECDSA P-256, signatures SHA-256: what kube-scheduler's client-go and Python's ssl
accept everywhere."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# A certificate is valid from a little before it is made: clocks of the nodes differ.
BACKDATE = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, both PEM."""

    cert: bytes
    key: bytes


class BadCertificate(ValueError):
    """PEM that is not a certificate (or key) this module can use, with a sentence."""


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def new_ca(common_name: str, now: dt.datetime, days: int) -> KeyPair:
    """A self-signed CA that may sign leaves only (path length 0)."""
    key = ec.generate_private_key(ec.SECP256R1())
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def sign_leaf(
    ca: KeyPair,
    common_name: str,
    now: dt.datetime,
    days: int,
    *,
    dns_names: tuple[str, ...] = (),
    client: bool = False,
) -> KeyPair:
    """A leaf the CA signs: a server certificate for `dns_names`, or a client certificate."""
    ca_cert = load_cert(ca.cert)
    ca_key = serialization.load_pem_private_key(ca.key, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise BadCertificate("the CA's key is not an ECDSA key")
    key = ec.generate_private_key(ec.SECP256R1())
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        # A leaf never outlives its CA: the client would fail verification after the CA.
        .not_valid_after(min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if dns_names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), critical=False
        )
    cert = builder.sign(ca_key, hashes.SHA256())
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def load_cert(pem: bytes) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as err:
        raise BadCertificate(f"not a PEM certificate: {err}") from err


def usable_for(pair: KeyPair, now: dt.datetime, renew_before: dt.timedelta) -> bool:
    """Whether the pair is a certificate with its own key, valid now and beyond `renew_before`."""
    try:
        cert = load_cert(pair.cert)
        key = serialization.load_pem_private_key(pair.key, password=None)
    except (BadCertificate, ValueError, TypeError):
        return False
    if key.public_key() != cert.public_key():
        return False
    return cert.not_valid_before_utc <= now and now + renew_before < cert.not_valid_after_utc


def signed_by(cert_pem: bytes, ca_pem: bytes) -> bool:
    """Whether the CA's key signed the certificate."""
    try:
        cert, ca = load_cert(cert_pem), load_cert(ca_pem)
        cert.verify_directly_issued_by(ca)
    except (BadCertificate, ValueError, TypeError, InvalidSignature):
        return False
    return True


def dns_names(cert_pem: bytes) -> tuple[str, ...]:
    """The DNS names a certificate is for, in its order; () when it names none."""
    try:
        ext = load_cert(cert_pem).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except (BadCertificate, x509.ExtensionNotFound):
        return ()
    return tuple(ext.value.get_values_for_type(x509.DNSName))
