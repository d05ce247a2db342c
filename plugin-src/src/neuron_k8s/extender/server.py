"""The extender's HTTP server: POST /filter, /prioritize and /bind as kube-scheduler calls them,
GET /healthz, /readyz and /metrics. With TLS (tls.py) the verbs are served only to clients whose
certificate the configured CA signed; the probes and metrics then have a plain port of their
own (`probes_only`), which serves no verb.

Status codes: kube-scheduler reads a body only from a 200 and reports any other status as a
bare code, so answers it can act on (a pod that fits nowhere, a bind that failed, not ready
yet) are 200 with the reason in "Error" or in FailedNodes; 400 is kept for requests that are
not extender requests at all (bad JSON, wrong types), 404/405 for wrong paths and methods.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..logs import get_logger
from .metrics import Metrics
from .protocol import (
    NamesCache,
    ProtocolError,
    binding_result,
    decode,
    encode,
    encode_priority_list,
    filter_error,
    parse_binding_args,
    read_extender_args,
)
from .verbs import Extender

log = get_logger("extender.http")

VERBS = ("filter", "prioritize", "bind")
PROBES = ("healthz", "readyz", "metrics")
# A NodeList of thousands of full Node objects (nodeCacheCapable: false) is tens of MiB.
MAX_BODY = 256 * 1024 * 1024
NOT_READY = "the Neuron extender is still listing nodes and pods; retry shortly"


class _BodyError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _error_doc(verb: str, message: str) -> Any:
    if verb == "filter":
        return filter_error(message)
    return binding_result(message)  # {"Error": ...}; also the error shape of prioritize


# BaseHTTPRequestHandler's own limits on one header line and on the number of headers.
_MAX_LINE = 65536
_MAX_HEADERS = 100


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # kube-scheduler keeps connections alive
    server_version = "neuron-scheduler-extender"
    # A client that stops sending (or never finishes a TLS handshake) frees its thread after
    # this long instead of holding it.
    timeout = 30
    # Buffered: the status line, headers and body leave in one write when the request is done
    # (handle_one_request flushes), not one write each.
    wbufsize = 1 << 16
    extender: Extender
    metrics: Metrics
    names: dict[str, NamesCache]  # per verb, as the lists differ
    probes_only: bool = False
    raw_requestline: bytes  # set by handle_one_request before parse_request

    def setup(self) -> None:
        super().setup()
        # A response smaller than a segment must not wait for the client's delayed ACK.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def parse_request(self) -> bool:
        """The request line and headers, read without the standard library's e-mail parser
        (a sixth of the extender's CPU at 500 nodes, plugin-src/bench/bench_scale.py). Same
        limits and answers as BaseHTTPRequestHandler.parse_request for what kube-scheduler and
        probes send; anything else is refused."""
        self.close_connection = True
        line = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        self.requestline = line
        parts = line.split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            self.request_version = "HTTP/1.0"
            self.send_error(400, f"Bad request line {line!r}")
            return False
        self.command, self.path, self.request_version = parts
        headers = http.client.HTTPMessage()
        for _ in range(_MAX_HEADERS + 1):
            raw = self.rfile.readline(_MAX_LINE + 1)
            if len(raw) > _MAX_LINE:
                self.send_error(431, "Line too long")
                return False
            if raw in (b"\r\n", b"\n", b""):
                break
            name, sep, value = str(raw, "iso-8859-1").partition(":")
            if not sep:
                self.send_error(400, "Bad header line")
                return False
            headers[name.strip()] = value.strip()
        else:
            self.send_error(431, "Too many headers")
            return False
        self.headers = headers
        connection = headers.get("Connection", "").lower()
        self.close_connection = connection == "close" or (
            self.request_version == "HTTP/1.0" and connection != "keep-alive"
        )
        if headers.get("Expect", "").lower() == "100-continue":
            self.send_response_only(100)
            self.end_headers()
            self.wfile.flush()  # the client waits for it before it sends the body
        return True

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http", client=self.client_address[0], message=format % args)

    def handle(self) -> None:
        # A client closing its kept-alive connection abruptly, failing the TLS handshake (no
        # certificate of our CA) or going silent is routine, not an error.
        with contextlib.suppress(ConnectionError, ssl.SSLError, TimeoutError):
            super().handle()

    # --- plumbing -------------------------------------------------------------------------
    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = self.headers.get("Content-Length")
        if length is None:
            self.close_connection = True
            raise _BodyError(411, "a request body with Content-Length is required")
        try:
            n = int(length)
        except ValueError:
            self.close_connection = True
            raise _BodyError(400, f"bad Content-Length {length!r}") from None
        if n < 0 or n > MAX_BODY:
            self.close_connection = True
            raise _BodyError(413, f"request body of {n} bytes is too large")
        return self.rfile.read(n)

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                self.close_connection = True
                raise _BodyError(400, "malformed chunked body") from None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            total += size
            if total > MAX_BODY:
                self.close_connection = True
                raise _BodyError(413, "request body is too large")
            parts.append(self.rfile.read(size))
            self.rfile.readline(1024)

    def _path(self) -> str:
        # The request target's path, split by hand: urlsplit reads "//x" as a host, and raises
        # for "//[" (found by the fuzzer).
        return self.path.split("?", 1)[0].split("#", 1)[0].strip("/")

    def _not_found(self, path: str) -> None:
        known = ", ".join(f"GET /{p}" for p in PROBES)
        if not self.probes_only:
            known = ", ".join(f"POST /{v}" for v in VERBS) + ", " + known
        self._send(404, encode({"Error": f"no such endpoint /{path}; this server has {known}"}))

    def _discard_body(self) -> None:
        # Keep the connection usable after refusing a request that carried a body.
        with contextlib.suppress(_BodyError):
            self._read_body()

    # --- methods --------------------------------------------------------------------------
    def do_GET(self) -> None:
        path = self._path()
        if path == "healthz":
            self._send(200, b"ok\n", "text/plain; charset=utf-8")
        elif path == "readyz":
            if self.extender.ready:
                self._send(200, b"ok\n", "text/plain; charset=utf-8")
            else:
                self._send(503, NOT_READY.encode() + b"\n", "text/plain; charset=utf-8")
        elif path == "metrics":
            self._send(200, self.metrics.render(), "text/plain; version=0.0.4; charset=utf-8")
        elif path in VERBS and not self.probes_only:
            self._send(
                405,
                encode(_error_doc(path, f"/{path} takes POST with a JSON body")),
                headers={"Allow": "POST"},
            )
        else:
            self._not_found(path)
        if path in VERBS or path in PROBES:
            self.metrics.requests.labels(path, str(self._status)).inc()

    do_HEAD = do_GET

    def send_response(self, code: int, message: str | None = None) -> None:
        self._status = code
        super().send_response(code, message)

    def do_POST(self) -> None:
        path = self._path()
        if path not in VERBS or self.probes_only:
            self._discard_body()
            if path in PROBES:
                self._send(405, encode({"Error": f"/{path} takes GET"}), headers={"Allow": "GET"})
            else:
                self._not_found(path)
            return
        start = time.perf_counter()
        status, doc = self._verb(path)
        self._send(status, doc if isinstance(doc, bytes) else encode(doc))
        self.metrics.latency.labels(path).observe(time.perf_counter() - start)
        self.metrics.requests.labels(path, str(status)).inc()

    def _other(self) -> None:
        self._discard_body()
        path = self._path()
        if path in VERBS:
            self._send(
                405, encode(_error_doc(path, f"/{path} takes POST")), headers={"Allow": "POST"}
            )
        elif path in PROBES:
            self._send(405, encode({"Error": f"/{path} takes GET"}), headers={"Allow": "GET"})
        else:
            self._not_found(path)

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _other

    def _verb(self, verb: str) -> tuple[int, Any]:
        try:
            body = self._read_body()
            if verb == "bind":
                bargs = parse_binding_args(decode(body))
                if not self.extender.ready:
                    return 200, binding_result(NOT_READY)
                outcome = self.extender.bind(bargs)
                self.metrics.binds.labels(outcome.outcome).inc()
                if outcome.error:
                    log.warning(
                        "bind failed", pod=bargs.pod_key, node=bargs.node, error=outcome.error
                    )
                return 200, binding_result(outcome.error)
            args = read_extender_args(body, self.names[verb])
            if verb == "filter":
                if not self.extender.ready:
                    return 200, filter_error(NOT_READY)
                result = self.extender.filter(args)
                failed = len(result["FailedNodes"])
                unresolvable = len(result["FailedAndUnresolvableNodes"])
                m = self.metrics.filtered
                m.labels("passed").inc(len(args.names) - failed - unresolvable)
                m.labels("failed").inc(failed)
                m.labels("unresolvable").inc(unresolvable)
                return 200, result
            if not self.extender.ready:
                return 200, encode_priority_list(args.names, [0] * len(args.names))
            return 200, encode_priority_list(*self.extender.prioritize(args))
        except _BodyError as err:
            return err.status, _error_doc(verb, str(err))
        except ProtocolError as err:
            log.warning("malformed request", verb=verb, error=str(err))
            return 400, _error_doc(verb, f"malformed {verb} request: {err}")
        except Exception as err:  # one bad request must not take the server down
            log.error("request failed", verb=verb, error=str(err), exc_info=True)
            return 500, _error_doc(verb, f"internal error in the Neuron extender: {err}")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    tls: Callable[[], ssl.SSLContext] | None = None

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        if self.tls is not None:
            sock = self.tls().wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A refused or broken TLS handshake is the client's problem, not a server error.
        log.info("connection dropped", client=str(client_address[0]), error=str(sys.exc_info()[1]))


class ExtenderServer:
    """Serves an Extender on address:port (port 0 picks a free one). With `tls` (a server-side
    SSLContext, or a callable giving the current one), every connection is TLS, and the
    handshake runs on the connection's own thread, so a client that stalls holds up nobody.
    `probes_only` serves /healthz, /readyz and /metrics and no verb."""

    def __init__(
        self,
        extender: Extender,
        address: str = "0.0.0.0",
        port: int = 12345,
        tls: ssl.SSLContext | Callable[[], ssl.SSLContext] | None = None,
        probes_only: bool = False,
        metrics: Metrics | None = None,
    ) -> None:
        self.extender = extender
        self.metrics = metrics or Metrics(
            extender.state, lambda: extender.ready, extender.pending.count
        )
        handler = type(
            "Handler",
            (_Handler,),
            {
                "extender": extender,
                "metrics": self.metrics,
                "names": {"filter": NamesCache(), "prioritize": NamesCache()},
                "probes_only": probes_only,
            },
        )
        server_cls: type[_Server] = _Server
        if tls is not None:
            current = tls if callable(tls) else (lambda: tls)
            server_cls = type("TlsServer", (_Server,), {"tls": staticmethod(current)})
        if ":" in address:
            server_cls = type("Server6", (server_cls,), {"address_family": socket.AF_INET6})
        self.httpd = server_cls((address, port), handler)
        self._thread: threading.Thread | None = None
        # How soon stop() takes effect; tests shorten it.
        self.poll_interval = 0.5

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def serve_forever(self) -> None:
        self.httpd.serve_forever(poll_interval=self.poll_interval)

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.serve_forever, name="extender-http", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
