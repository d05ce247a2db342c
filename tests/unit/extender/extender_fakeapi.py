"""A small fake Kubernetes API server over real HTTP on 127.0.0.1, enough for the extender:
list (paginated with limit/continue) and watch (chunked JSON lines) of pods and nodes, get and
merge-patch of a pod, the pods/binding subresource, posting Events, and get and patch of the
Deployments in `deployments`. Every call is recorded; failures can be injected per method and
path. The object store is FakeCluster (extender_fakestore.py), usable without HTTP too, for
fast property tests."""

from __future__ import annotations

import bisect
import contextlib
import json
import re
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from extender_fakestore import Failure, FakeCluster, merge

__all__ = ["Call", "Failure", "FakeApiServer", "FakeCluster", "merge"]

POD_PATH = re.compile(r"^/api/v1/namespaces/([^/]+)/pods/([^/]+)(/binding)?$")
EVENTS_PATH = re.compile(r"^/api/v1/namespaces/([^/]+)/events$")
DEPLOYMENT_PATH = re.compile(r"^/apis/apps/v1/namespaces/([^/]+)/deployments/([^/]+)$")


@dataclass
class Call:
    method: str
    path: str
    body: Any = None
    content_type: str = ""
    query: dict[str, str] = field(default_factory=dict)


@dataclass
class Injected:
    method: str
    pattern: re.Pattern[str]
    failure: Failure
    times: int
    after: int = 0
    applied: bool = False  # the request takes effect, and its answer is the failure


class FakeApiServer:
    def __init__(self, cluster: FakeCluster | None = None) -> None:
        self.cluster = cluster or FakeCluster()
        self.deployments: dict[str, Any] = {}  # "namespace/name": get and strategic merge patch
        self.calls: list[Call] = []
        self._calls_lock = threading.Lock()
        self._injected: list[Injected] = []
        self._stopping = False
        self._delays: dict[str, float] = {}
        api = self

        class Handler(_Handler):
            server_api = api

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> FakeApiServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stopping = True
        with self.cluster.cond:
            self.cluster.cond.notify_all()
        self.httpd.shutdown()
        self.httpd.server_close()

    # --- test controls ----------------------------------------------------------------------
    def fail(
        self,
        method: str,
        path_regex: str,
        code: int = 500,
        reason: str = "InternalError",
        message: str = "injected failure",
        times: int = 1,
        after: int = 0,
        applied: bool = False,
    ) -> None:
        """Fail `times` matching calls, after letting the first `after` of them through; with
        `applied`, each still takes effect (an answer lost on the way back)."""
        self._injected.append(
            Injected(
                method,
                re.compile(path_regex),
                Failure(code, reason, message),
                times,
                after,
                applied,
            )
        )

    def delay(self, method: str, seconds: float) -> None:
        """Slow down every call of a method, to widen race windows."""
        self._delays[method] = seconds

    def record(self, call: Call) -> None:
        with self._calls_lock:
            self.calls.append(call)

    def calls_of(self, method: str, suffix: str = "") -> list[Call]:
        with self._calls_lock:
            return [c for c in self.calls if c.method == method and c.path.endswith(suffix)]

    def _injected_failure(self, method: str, path: str) -> Injected | None:
        for inj in self._injected:
            if inj.method == method and inj.times > 0 and inj.pattern.search(path):
                if inj.after > 0:
                    inj.after -= 1
                    continue
                inj.times -= 1
                return inj
        return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_api: FakeApiServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def handle(self) -> None:
        # A client that goes away mid-connection (a stopped extender) is not an error here.
        with contextlib.suppress(ConnectionError):
            super().handle()

    def _json(self, code: int, doc: Any) -> None:
        body = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> Any:
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        return json.loads(raw) if raw else None

    def _handle(self, method: str) -> None:
        api = self.server_api
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        body = self._body() if method in ("POST", "PATCH", "PUT") else None
        api.record(Call(method, url.path, body, self.headers.get("Content-Type", ""), query))
        if method in api._delays:
            time.sleep(api._delays[method])
        try:
            injected = api._injected_failure(method, url.path)
            if injected and injected.applied:
                self._json = lambda code, doc: None  # type: ignore[method-assign]
                try:
                    self._route(method, url.path, query, body)
                finally:
                    del self._json
            if injected:
                raise injected.failure
            self._route(method, url.path, query, body)
        except Failure as f:
            self._json(f.code, f.status())

    def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> None:
        cluster = self.server_api.cluster
        for kind in ("pods", "nodes"):
            if path == f"/api/v1/{kind}" and method == "GET":
                if query.get("watch") == "true":
                    self._watch(
                        kind,
                        int(query.get("resourceVersion") or 0),
                        float(query.get("timeoutSeconds") or 300),
                    )
                else:
                    limit = int(query.get("limit") or 0)
                    self._json(200, cluster.list(kind, limit, query.get("continue", "")))
                return
        m = EVENTS_PATH.match(path)
        if m and method == "POST":
            with cluster.cond:
                cluster.events.append(body or {})
            self._json(201, body)
            return
        m = DEPLOYMENT_PATH.match(path)
        if m and method in ("GET", "PATCH"):
            deployments = self.server_api.deployments
            key = f"{m.group(1)}/{m.group(2)}"
            if key not in deployments:
                raise Failure(404, "NotFound", f'deployments.apps "{m.group(2)}" not found')
            if method == "PATCH":
                if self.headers.get("Content-Type") != "application/strategic-merge-patch+json":
                    raise Failure(415, "UnsupportedMediaType", "only strategic merge patches here")
                # Maps of annotations merge alike in both kinds of patch.
                deployments[key] = merge(deployments[key], body or {})
            self._json(200, deployments[key])
            return
        m = POD_PATH.match(path)
        if m:
            key = f"{m.group(1)}/{m.group(2)}"
            if m.group(3) and method == "POST":
                cluster.bind_pod(key, body or {})
                self._json(
                    201, {"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 201}
                )
                return
            if not m.group(3) and method == "GET":
                self._json(200, cluster.get("pods", key))
                return
            if not m.group(3) and method == "PATCH":
                if self.headers.get("Content-Type") != "application/merge-patch+json":
                    raise Failure(415, "UnsupportedMediaType", "only merge patches here")
                self._json(200, cluster.patch_pod(key, body or {}))
                return
        raise Failure(404, "NotFound", f"the fake API server has no {method} {path}")

    def _watch(self, kind: str, since: int, timeout: float) -> None:
        api = self.server_api
        cluster = api.cluster
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def chunk(doc: Any) -> None:
            data = json.dumps(doc).encode() + b"\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        deadline = time.monotonic() + timeout
        sent = since
        try:
            while not api._stopping and time.monotonic() < deadline:
                with cluster.cond:
                    if sent < cluster.compacted:
                        gone = Failure(410, "Expired", "too old resource version")
                        pending: list[Any] = [("ERROR", gone.status())]
                    else:
                        history = cluster.history[kind]
                        start = bisect.bisect_right(history, sent, key=lambda h: h[0])
                        pending = [(e, o) for _, e, o in history[start:]]
                        if not pending:
                            cluster.cond.wait(0.2)
                            continue
                        sent = history[-1][0]
                for event, obj in pending:
                    chunk({"type": event, "object": obj})
                if pending and pending[0][0] == "ERROR":
                    break
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            pass
        self.close_connection = True

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")
