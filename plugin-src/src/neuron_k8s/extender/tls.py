"""The extender's TLS: a server certificate, and the CA whose client certificates it accepts
(mutual TLS with my-scheduler, docs/security.md). The files are read again when they change,
so a rotated certificate (a Secret the kubelet updates in place, or cert-manager's renewal)
is used for new connections without a restart."""

from __future__ import annotations

import os
import ssl
import threading
import time

from ..logs import get_logger

log = get_logger("extender.tls")


class ServerTls:
    def __init__(self, cert: str, key: str, client_ca: str, check_every: float = 10.0) -> None:
        self._files = (cert, key, client_ca)
        self._check_every = check_every
        self._lock = threading.Lock()
        self._stamp = self._read_stamp()
        self._context = self._load()
        self._checked = time.monotonic()

    def _read_stamp(self) -> tuple[tuple[int, int, int], ...]:
        out = []
        for path in self._files:
            st = os.stat(path)
            out.append((st.st_ino, st.st_size, st.st_mtime_ns))
        return tuple(out)

    def _load(self) -> ssl.SSLContext:
        cert, key, client_ca = self._files
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(cert, key)
        ctx.load_verify_locations(cafile=client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED  # only clients our CA signed
        return ctx

    def __call__(self) -> ssl.SSLContext:
        """The current context; the files are looked at again at most every `check_every`."""
        now = time.monotonic()
        if now - self._checked < self._check_every:
            return self._context
        with self._lock:
            self._checked = now
            try:
                stamp = self._read_stamp()
                if stamp != self._stamp:
                    self._context, self._stamp = self._load(), stamp
                    log.info("TLS certificates reloaded", cert=self._files[0])
            except (OSError, ssl.SSLError) as err:
                # Half-written files during a rotation: keep serving with the last good ones.
                log.warning("TLS certificates not reloaded, keeping the last", error=str(err))
            return self._context
