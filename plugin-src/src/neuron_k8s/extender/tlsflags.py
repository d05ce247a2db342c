"""The extender's TLS flags: certificate files to read (`--tls-cert-file` and the others), or
certificates issued in the cluster (`--tls-issue-dir`, clustercerts.py)."""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Callable

from ..kube import KubeClient
from .clustercerts import ClusterCerts, Settings

ENV_PREFIX = "NEURON_EXTENDER_"


def _days(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of days: {text!r}") from None
    if not 1 <= value <= 36500:
        raise argparse.ArgumentTypeError(f"must be 1 to 36500 days: {text}")
    return value


def cluster_certs(args: argparse.Namespace, client: KubeClient) -> ClusterCerts | str:
    """The in-cluster issuer the flags ask for, or a sentence saying what is wrong."""
    if args.tls_cert_file or args.tls_key_file or args.tls_client_ca_file:
        return "--tls-issue-dir issues the certificates: drop --tls-cert-file and the others"
    missing = [
        flag
        for flag, value in (
            ("--pod-namespace", args.pod_namespace),
            ("--tls-ca-secret", args.tls_ca_secret),
            ("--tls-client-secret", args.tls_client_secret),
            ("--tls-dns-names", args.tls_dns_names),
        )
        if not value
    ]
    if missing:
        return f"--tls-issue-dir needs {', '.join(missing)}"
    if args.tls_renew_before_days * 2 >= min(args.tls_validity_days, args.tls_ca_validity_days):
        return "--tls-renew-before-days must be less than half of both validity periods"
    settings = Settings(
        namespace=args.pod_namespace,
        ca_secret=args.tls_ca_secret,
        client_secret=args.tls_client_secret,
        client_name=args.tls_client_name,
        dns_names=tuple(n.strip() for n in args.tls_dns_names.split(",") if n.strip()),
        out_dir=args.tls_issue_dir,
        leaf_days=args.tls_validity_days,
        ca_days=args.tls_ca_validity_days,
        renew_before=dt.timedelta(days=args.tls_renew_before_days),
        owner_deployment=args.scheduler_deployment or "",
    )
    return ClusterCerts(client, settings)


# (flag, default, type, help): the environment variable is NEURON_EXTENDER_ and the flag's
# name in upper case, dashes as underscores.
_FLAGS: list[tuple[str, str | None, Callable[[str], int] | None, str]] = [
    ("--tls-cert-file", None, None,
     "Serve the verbs over HTTPS with this certificate (PEM), and only to clients whose "
     "certificate --tls-client-ca-file signed."),
    ("--tls-key-file", None, None, "Private key of --tls-cert-file (PEM)."),
    ("--tls-client-ca-file", None, None,
     "CA certificate (PEM) that signed the clients allowed to call the verbs."),
    ("--tls-issue-dir", None, None,
     "Issue the TLS certificates in the cluster instead of reading --tls-cert-file and the "
     "others: keep a CA in --tls-ca-secret and my-scheduler's client certificate in "
     "--tls-client-secret (both in --pod-namespace; made when absent, renewed before expiry; "
     "owned by --scheduler-deployment when given), and write this replica's server "
     "certificate, key and the CA here."),
    ("--tls-ca-secret", None, None, "Secret of the CA, with --tls-issue-dir."),
    ("--tls-client-secret", None, None,
     "Secret of my-scheduler's client certificate and the CA, with --tls-issue-dir."),
    ("--tls-dns-names", "", None,
     "Comma-separated DNS names of the server certificate (the extender Service's), with "
     "--tls-issue-dir."),
    ("--tls-client-name", "my-scheduler", None, "Common name of the client certificate."),
    ("--tls-validity-days", "365", _days,
     "Days the issued server and client certificates are valid; renewed "
     "--tls-renew-before-days before expiry."),
    ("--tls-ca-validity-days", "3650", _days,
     "Days the issued CA is valid; a new CA restarts my-scheduler (--scheduler-deployment)."),
    ("--tls-renew-before-days", "30", _days,
     "Days before expiry an issued certificate is renewed (the CA at twice this)."),
]  # fmt: skip


def add_arguments(p: argparse.ArgumentParser, env: Callable[..., str | None]) -> None:
    for flag, default, kind, text in _FLAGS:
        name = flag.removeprefix("--").upper().replace("-", "_")
        raw = env(name) or default
        shown = "; default %(default)s." if default else "."
        help_text = f"{text} Env {ENV_PREFIX}{name}{shown}"
        if kind is None:
            p.add_argument(flag, default=raw, help=help_text)
        else:
            # A string default goes through `type`: a bad variable is refused as a bad flag is.
            p.add_argument(flag, type=kind, default=raw, help=help_text)
