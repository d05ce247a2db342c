"""Reading a kubeconfig file: the server, the credentials and the TLS settings of its current
context (kube.KubeClient.from_config uses it when a file is given)."""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ClientConfig:
    server: str
    token: str | None
    token_file: str | None
    ssl_context: ssl.SSLContext | None
    namespace: str | None = None  # the context's namespace, if it names one


def read_kubeconfig(path: str, context_name: str | None = None) -> ClientConfig:
    """The file's current context, or `context_name` (ValueError when it has no such one)."""
    import yaml  # only kubeconfig files need it

    with open(path) as f:
        cfg = yaml.safe_load(f) or {}
    by_name = {
        kind: {e["name"]: e.get(kind[:-1], {}) for e in cfg.get(kind) or []}
        for kind in ("clusters", "users", "contexts")
    }
    ctx_name = context_name or cfg.get("current-context")
    if context_name and context_name not in by_name["contexts"]:
        raise ValueError(f"kubeconfig {path}: no context {context_name!r}")
    context: dict[str, Any] = by_name["contexts"].get(ctx_name) or next(
        iter(by_name["contexts"].values()), {}
    )
    cluster = by_name["clusters"].get(context.get("cluster"), {})
    user = by_name["users"].get(context.get("user"), {})
    server = cluster.get("server")
    if not server:
        raise ValueError(f"kubeconfig {path}: no server for context {ctx_name!r}")
    base = os.path.dirname(os.path.abspath(path))
    ssl_ctx = None
    if server.startswith("https"):
        ssl_ctx = ssl.create_default_context()
        if cluster.get("insecure-skip-tls-verify"):
            ssl_ctx.check_hostname = False
            ssl_ctx.verify_mode = ssl.CERT_NONE
        elif cluster.get("certificate-authority-data"):
            ssl_ctx.load_verify_locations(
                cadata=base64.b64decode(cluster["certificate-authority-data"]).decode()
            )
        elif cluster.get("certificate-authority"):
            ssl_ctx.load_verify_locations(os.path.join(base, cluster["certificate-authority"]))
        _load_client_cert(ssl_ctx, user, base)
    token = user.get("token")
    token_file = os.path.join(base, user["tokenFile"]) if user.get("tokenFile") else None
    return ClientConfig(server, token, token_file, ssl_ctx, context.get("namespace"))


def _load_client_cert(ctx: ssl.SSLContext, user: dict[str, Any], base: str) -> None:
    """Load the user's client certificate and key. ssl loads a chain only from files, so
    inline data goes through private temporary files that are removed at once."""
    paths: list[str | None] = []
    made: list[str] = []
    try:
        for field in ("client-certificate", "client-key"):
            if user.get(f"{field}-data"):
                fd, name = tempfile.mkstemp(prefix="neuron-k8s-", suffix=".pem")
                made.append(name)
                with os.fdopen(fd, "wb") as f:
                    f.write(base64.b64decode(user[f"{field}-data"]))
                paths.append(name)
            elif user.get(field):
                paths.append(os.path.join(base, user[field]))
            else:
                paths.append(None)
        if paths[0]:
            ctx.load_cert_chain(paths[0], paths[1])
    finally:
        for name in made:
            os.unlink(name)
