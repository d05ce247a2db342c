"""The plugin's own HTTP server (no global handlers): /healthz, /readyz and /metrics."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from neuron_k8s.logs import get_logger

log = get_logger("deviceplugin.http")


class Metrics(Protocol):
    """The device plugin's metrics, or the DRA driver's: whatever has a registry."""

    registry: CollectorRegistry


class StatusServer:
    """`live()` answers /healthz (the process can serve), `ready()` /readyz (every resource is
    registered with the kubelet); each returns (ok, text)."""

    def __init__(
        self,
        port: int,
        metrics: Metrics,
        live: Callable[[], tuple[bool, str]],
        ready: Callable[[], tuple[bool, str]],
        host: str = "",
    ) -> None:
        routes: dict[str, Callable[[], tuple[int, str, bytes]]] = {
            "/healthz": lambda: _text(*live()),
            "/readyz": lambda: _text(*ready()),
            "/metrics": lambda: (200, CONTENT_TYPE_LATEST, generate_latest(metrics.registry)),
        }

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                route = routes.get(self.path.split("?", 1)[0])
                status, ctype, body = route() if route else (404, "text/plain", b"not found\n")
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                log.debug("http request", request=format % args)

        self._httpd = ThreadingHTTPServer((host, port), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="http", daemon=True)

    def start(self) -> None:
        self._thread.start()
        log.info("http serving", port=self.port)

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def _text(ok: bool, text: str) -> tuple[int, str, bytes]:
    return (200 if ok else 503), "text/plain; charset=utf-8", f"{text}\n".encode()
