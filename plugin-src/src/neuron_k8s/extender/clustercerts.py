"""Mutual-TLS certificates kept in the cluster by the extender itself (the chart's mode `chart`,
docs/security.md): a render of the chart holds no key material, so two renders are identical
(GitOps) and no key sits in Helm's release records.

Two Secrets in the extender's namespace hold what must be shared: the CA (certificate and key;
only the extender reads it) and my-scheduler's client certificate with the CA (my-scheduler
mounts it). Each extender replica signs its own server certificate with the CA and writes it,
its key and the CA to `out_dir` (a memory-backed emptyDir), where tls.py reads them and notices
changes. `ensure` makes whatever is missing, unreadable, signed by another CA or within
`renew_before` of expiry, and keeps the rest: a restart or a second replica changes nothing.
The CA is renewed at twice `renew_before` before its expiry, so that leaves re-signed by the old
CA are replaced too. A new CA while my-scheduler's Secret already existed (a scheduler may have
started with the old CA) is told to `on_new_ca`, which rolls my-scheduler
(schedulerrestart.py); on a fresh install my-scheduler is still waiting for its Secret.

The Secrets are owned by my-scheduler's Deployment when it is named, so that the garbage
collector deletes them with the release. Writes are create (409: another replica was first,
read its) or replace with the resourceVersion read (409: read again); a Secret someone else
broke is replaced, never patched."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..atomicfile import write_atomically
from ..kube import ApiError, KubeClient
from ..logs import get_logger
from . import certissuer
from .certissuer import KeyPair

log = get_logger("extender.clustercerts")

MANAGED_BY = {"app.kubernetes.io/managed-by": "neuron-scheduler-extender"}
SERVER_FILES = ("tls.crt", "tls.key", "ca.crt")
CONFLICT_ATTEMPTS = 5


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Settings:
    namespace: str
    ca_secret: str
    client_secret: str
    client_name: str  # my-scheduler's certificate's common name
    dns_names: tuple[str, ...]  # the extender Service's names
    out_dir: str
    leaf_days: int = 365
    ca_days: int = 3650
    renew_before: dt.timedelta = dt.timedelta(days=30)
    # my-scheduler's Deployment, made the Secrets' owner: uninstalling the release deletes them.
    owner_deployment: str = ""


class ClusterCerts:
    def __init__(
        self,
        client: KubeClient,
        settings: Settings,
        *,
        clock: Callable[[], dt.datetime] = utc_now,
        on_new_ca: Callable[[bytes], None] | None = None,
    ) -> None:
        self._client = client
        self.on_new_ca = on_new_ca
        self._s = settings
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def files(self) -> tuple[str, str, str]:
        """The server certificate, its key and the clients' CA, as tls.py reads them."""
        return (
            os.path.join(self._s.out_dir, "tls.crt"),
            os.path.join(self._s.out_dir, "tls.key"),
            os.path.join(self._s.out_dir, "ca.crt"),
        )

    # --- one pass ---------------------------------------------------------------------------
    def ensure(self) -> None:
        """Make the CA, the client Secret and this replica's server files right (ApiError,
        OSError on failure: nothing half-written is left in use)."""
        ca, new_ca = self._ensure_ca()
        had_client = self._ensure_client(ca)
        self._ensure_server(ca)
        if new_ca and had_client and self.on_new_ca is not None:
            self.on_new_ca(ca.cert)

    def _path(self, name: str) -> str:
        return f"/api/v1/namespaces/{self._s.namespace}/secrets/{name}"

    def _read(self, name: str) -> dict[str, Any] | None:
        try:
            return self._client.get(self._path(name))
        except ApiError as err:
            if err.status == 404:
                return None
            raise

    def _write(self, name: str, old: dict[str, Any] | None, data: dict[str, bytes]) -> None:
        metadata: dict[str, Any] = {"name": name, "namespace": self._s.namespace}
        if self._s.owner_deployment:
            metadata["ownerReferences"] = [self._owner()]
        if old is None:
            metadata["labels"] = dict(MANAGED_BY)
        else:
            metadata["labels"] = {**(old.get("metadata", {}).get("labels") or {}), **MANAGED_BY}
            metadata["resourceVersion"] = old["metadata"]["resourceVersion"]
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": metadata,
            "type": "kubernetes.io/tls",
            "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
        }
        if old is None:
            self._client.post(f"/api/v1/namespaces/{self._s.namespace}/secrets", body)
        elif old.get("type", "Opaque") != "kubernetes.io/tls":
            # The type of a Secret cannot change: make it again.
            self._client.request(
                "DELETE",
                self._path(name),
                body={"preconditions": {"resourceVersion": old["metadata"]["resourceVersion"]}},
            )
            del metadata["resourceVersion"]
            self._client.post(f"/api/v1/namespaces/{self._s.namespace}/secrets", body)
        else:
            self._client.request("PUT", self._path(name), body=body)

    def _owner(self) -> dict[str, Any]:
        name = self._s.owner_deployment
        owner = self._client.get(f"/apis/apps/v1/namespaces/{self._s.namespace}/deployments/{name}")
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
            "uid": owner["metadata"]["uid"],
        }

    def _settle(
        self,
        name: str,
        keep: Callable[[dict[str, bytes]], bool],
        make: Callable[[], dict[str, bytes]],
    ) -> tuple[dict[str, bytes], bool, bool]:
        """The Secret's data when `keep` accepts it, else what `make` gives, written; on a
        conflict (another replica wrote meanwhile) read again and judge that. With it: whether
        this call wrote it, and whether the Secret existed before."""
        for _ in range(CONFLICT_ATTEMPTS):
            old = self._read(name)
            data = _decode(old)
            if data is not None and keep(data):
                return data, False, True
            new = make()
            try:
                self._write(name, old, new)
            except ApiError as err:
                if err.status == 409:
                    continue
                raise
            log.info(
                "certificate secret written",
                secret=name,
                reason="absent" if old is None else "unusable, another CA or near expiry",
            )
            return new, True, old is not None
        raise ApiError(
            409, "Conflict", f"secret {name} kept changing under {CONFLICT_ATTEMPTS} writes"
        )

    def _ensure_ca(self) -> tuple[KeyPair, bool]:
        """The CA, and whether this call made it."""
        now = self._clock()

        def keep(data: dict[str, bytes]) -> bool:
            pair = _pair(data)
            return pair is not None and certissuer.usable_for(pair, now, 2 * self._s.renew_before)

        def make() -> dict[str, bytes]:
            name = f"{self._s.ca_secret}@{int(now.timestamp())}"
            ca = certissuer.new_ca(name, now, self._s.ca_days)
            return {"tls.crt": ca.cert, "tls.key": ca.key}

        data, written, _ = self._settle(self._s.ca_secret, keep, make)
        pair = _pair(data)
        assert pair is not None  # keep() or make() gave both keys
        return pair, written

    def _current_leaf(
        self, data: dict[str, bytes], ca: KeyPair, now: dt.datetime
    ) -> KeyPair | None:
        """The leaf in `data` when it is the CA's, with that CA beside it, and not yet due for
        renewal (the client Secret and the server files alike); else None."""
        pair = _pair(data)
        if (
            pair is not None
            and data.get("ca.crt") == ca.cert
            and certissuer.signed_by(pair.cert, ca.cert)
            and certissuer.usable_for(pair, now, self._s.renew_before)
        ):
            return pair
        return None

    def _ensure_client(self, ca: KeyPair) -> bool:
        """Whether my-scheduler's Secret existed (a scheduler may have started with it)."""
        now = self._clock()

        def keep(data: dict[str, bytes]) -> bool:
            return self._current_leaf(data, ca, now) is not None

        def make() -> dict[str, bytes]:
            leaf = certissuer.sign_leaf(
                ca, self._s.client_name, now, self._s.leaf_days, client=True
            )
            return {"tls.crt": leaf.cert, "tls.key": leaf.key, "ca.crt": ca.cert}

        return self._settle(self._s.client_secret, keep, make)[2]

    def _ensure_server(self, ca: KeyPair) -> None:
        now = self._clock()
        have = {}
        for name, path in zip(SERVER_FILES, self.files, strict=True):
            try:
                with open(path, "rb") as f:
                    have[name] = f.read()
            except FileNotFoundError:
                pass
        pair = self._current_leaf(have, ca, now)
        if pair is not None and certissuer.dns_names(pair.cert) == self._s.dns_names:
            return
        leaf = certissuer.sign_leaf(
            ca, self._s.dns_names[-1], now, self._s.leaf_days, dns_names=self._s.dns_names
        )
        # The key and certificate first, the CA last: tls.py reloads on any change and a CA
        # change rolls my-scheduler, which then finds a server certificate of that CA.
        for name, content in (("tls.key", leaf.key), ("tls.crt", leaf.cert), ("ca.crt", ca.cert)):
            write_atomically(os.path.join(self._s.out_dir, name), content)
        log.info("server certificate written", dir=self._s.out_dir, dns_names=self._s.dns_names)

    # --- in the background --------------------------------------------------------------------
    def ensure_until_done(self, backoff: tuple[float, float] = (1.0, 60.0)) -> bool:
        """`ensure` until it succeeds (True) or `stop` (False): nothing can be served before."""
        delay = backoff[0]
        while not self._stop.is_set():
            try:
                self.ensure()
                return True
            except (ApiError, OSError, certissuer.BadCertificate) as err:
                log.warning(
                    "cannot issue the TLS certificates, retrying", error=str(err), retry_in=delay
                )
            if self._stop.wait(delay):
                break
            delay = min(delay * 2, backoff[1])
        return False

    def start(self, every: float = 3600.0) -> None:
        """Check again every `every` seconds, renewing what comes near expiry."""

        def run() -> None:
            while not self._stop.wait(every):
                self.ensure_until_done()

        self._thread = threading.Thread(target=run, name="cluster-certs", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()


def _decode(secret: dict[str, Any] | None) -> dict[str, bytes] | None:
    if secret is None:
        return None
    out = {}
    for key, value in (secret.get("data") or {}).items():
        if not isinstance(value, str):
            return None
        try:
            out[str(key)] = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return None
    return out


def _pair(data: dict[str, bytes]) -> KeyPair | None:
    cert, key = data.get("tls.crt"), data.get("tls.key")
    return KeyPair(cert, key) if cert and key else None
