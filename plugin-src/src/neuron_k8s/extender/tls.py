"""The extender's TLS: a server certificate, and the CA whose client certificates it accepts
(mutual TLS with my-scheduler, docs/security.md). The files are read again when they change,
so a rotated certificate (a Secret the kubelet updates in place, or cert-manager's renewal)
is used for new connections without a restart. `on_ca_change` hears of a client CA whose
content changed (schedulerrestart.py: my-scheduler loads its CA only at start)."""

from __future__ import annotations

import os
import ssl
import threading
import time
from collections.abc import Callable

from ..logs import get_logger
from .schedulerrestart import ca_hash

log = get_logger("extender.tls")


class ServerTls:
    def __init__(
        self,
        cert: str,
        key: str,
        client_ca: str,
        check_every: float = 10.0,
        on_ca_change: Callable[[str], None] | None = None,
    ) -> None:
        self._files = (cert, key, client_ca)
        self._check_every = check_every
        self._on_ca_change = on_ca_change
        self._lock = threading.Lock()
        self._stamp = self._read_stamp()
        self._context, self.ca_hash = self._load()
        self._checked = time.monotonic()

    def _read_stamp(self) -> tuple[tuple[int, int, int], ...]:
        out = []
        for path in self._files:
            st = os.stat(path)
            out.append((st.st_ino, st.st_size, st.st_mtime_ns))
        return tuple(out)

    def _load(self) -> tuple[ssl.SSLContext, str]:
        """The context, and the sha256 of the client CA's bytes as loaded."""
        cert, key, client_ca = self._files
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(cert, key)
        with open(client_ca, "rb") as f:
            pem = f.read()
        # The bytes hashed are the bytes trusted, even if the file changes meanwhile.
        try:
            ctx.load_verify_locations(cadata=pem.decode("ascii", errors="replace"))
        except ValueError as err:  # an empty file: what cafile= reports as an SSLError
            raise ssl.SSLError(f"{client_ca}: {err}") from err
        ctx.verify_mode = ssl.CERT_REQUIRED  # only clients our CA signed
        return ctx, ca_hash(pem)

    def __call__(self) -> ssl.SSLContext:
        """The current context; the files are looked at again at most every `check_every`."""
        now = time.monotonic()
        if now - self._checked < self._check_every:
            return self._context
        changed = None
        with self._lock:
            self._checked = now
            try:
                stamp = self._read_stamp()
                if stamp != self._stamp:
                    (self._context, digest), self._stamp = self._load(), stamp
                    log.info("TLS certificates reloaded", cert=self._files[0])
                    if digest != self.ca_hash:
                        self.ca_hash = changed = digest
                        log.info("client CA changed", ca=digest[:16])
            except (OSError, ssl.SSLError) as err:
                # Half-written files during a rotation: keep serving with the last good ones.
                log.warning("TLS certificates not reloaded, keeping the last", error=str(err))
            context = self._context
        if changed is not None and self._on_ca_change is not None:
            try:
                self._on_ca_change(changed)
            except Exception as err:  # a connection's thread: never fail the handshake for it
                log.error("client CA change not handled", exc_info=True, error=str(err))
        return context
