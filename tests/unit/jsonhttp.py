"""What the API server stand-ins share: the HTTP plumbing (keep-alive, no request log, JSON
answers written without Nagle's delay) and a kubeconfig that points a client at one."""

from __future__ import annotations

import json
import queue
import socket
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any


class JsonHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without this, Nagle's algorithm and the
        # client's delayed ACK add 40 ms to every response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _send(self, status: int, doc: Any) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _stream(
        self,
        events: queue.Queue[dict[str, Any] | None],
        keep: Callable[[dict[str, Any]], bool] = lambda _: True,
    ) -> None:
        """Answer a watch: a JSON line per event of `events` that `keep` accepts, until a None
        (the server's end of the watch) or the client goes."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            while True:
                event = events.get()
                if event is None:
                    return
                if keep(event):
                    self.wfile.write(json.dumps(event).encode() + b"\n")
                    self.wfile.flush()
        except OSError:
            pass


def write_kubeconfig(path: str, server: str) -> str:
    """A kubeconfig for `server` with a bearer token, written to `path`."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": server}}],
        "users": [{"name": "fake", "user": {"token": "test"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
        "current-context": "fake",
    }
    with open(path, "w") as f:
        json.dump(doc, f)  # JSON is YAML
    return path
