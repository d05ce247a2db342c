"""The few Kubernetes API calls the plugin and the extender need, over the standard library.

A full client library costs tens of MiB of memory in a DaemonSet that runs on every node; this
one does get, merge-patch, post and watch, and a Reflector that keeps a local view current.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import ssl
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

from .logs import get_logger
from .objects import for_each_object
from .wirejson import loads

log = get_logger("kube")

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


class ApiError(Exception):
    """The API server answered with an error status (or could not be reached: status 0)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


def _error_from(status: int, body: bytes) -> ApiError:
    try:
        doc = json.loads(body)
        return ApiError(status, str(doc.get("reason", "")), str(doc.get("message", "")))
    except ValueError:
        return ApiError(status, "", body[:200].decode(errors="replace"))


# Kept-alive connections a client holds between requests. The extender serves each of
# kube-scheduler's connections on a thread of its own, and kube-scheduler opens and closes
# connections as its binds come and go: a connection per thread would cost a TLS handshake
# per bind (measured: a fifth of the extender's time at 500 nodes, plugin-src/bench/bench_scale.py).
MAX_IDLE_CONNECTIONS = 32


class KubeClient:
    """A minimal, thread-safe API client. Requests take a kept-alive connection from a small
    shared pool, or open one; watches have their own."""

    def __init__(
        self,
        server: str,
        token: str | None = None,
        token_file: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 30.0,
    ) -> None:
        url = urllib.parse.urlsplit(server.rstrip("/"))
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"API server address must be http(s)://host[:port], got {server!r}")
        self.server = server.rstrip("/")
        self._scheme = url.scheme
        self._host = url.hostname
        self._port = url.port or (443 if url.scheme == "https" else 80)
        self._prefix = url.path
        self._token = token
        self._token_file = token_file
        self._ssl = ssl_context
        self._timeout = timeout
        self._idle: list[http.client.HTTPConnection] = []
        self._idle_lock = threading.Lock()

    # --- construction -------------------------------------------------------------------
    @classmethod
    def from_config(cls, kubeconfig: str | None = None, timeout: float = 30.0) -> KubeClient | None:
        """From a kubeconfig file when one is given, else from the pod's service account when
        running in a cluster, else None (standalone). `timeout` bounds each request."""
        if kubeconfig:
            from .kubeconfig import read_kubeconfig

            c = read_kubeconfig(kubeconfig)
            return cls(c.server, c.token, c.token_file, c.ssl_context, timeout)
        host, port = (
            os.environ.get("KUBERNETES_SERVICE_HOST"),
            os.environ.get("KUBERNETES_SERVICE_PORT", "443"),
        )
        token_file = os.path.join(SERVICE_ACCOUNT_DIR, "token")
        if not host or not os.path.exists(token_file):
            return None
        ctx = ssl.create_default_context(cafile=os.path.join(SERVICE_ACCOUNT_DIR, "ca.crt"))
        if ":" in host:
            host = f"[{host}]"
        return cls(
            f"https://{host}:{port}", token_file=token_file, ssl_context=ctx, timeout=timeout
        )

    @classmethod
    def for_url(cls, base_url: str, token: str | None = None) -> KubeClient:
        """For tests and local servers: no certificate verification."""
        ctx = None
        if base_url.startswith("https"):
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return cls(base_url, token=token, ssl_context=ctx)

    # --- requests -----------------------------------------------------------------------
    def _new_conn(self, timeout: float | None) -> http.client.HTTPConnection:
        if self._scheme == "https":
            return http.client.HTTPSConnection(
                self._host, self._port, timeout=timeout, context=self._ssl
            )
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def _take_conn(self, timeout: float | None, fresh: bool) -> http.client.HTTPConnection:
        conn = None
        if not fresh:
            with self._idle_lock:
                conn = self._idle.pop() if self._idle else None
        if conn is None:
            return self._new_conn(timeout)
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn

    def _give_back(self, conn: http.client.HTTPConnection) -> None:
        with self._idle_lock:
            if len(self._idle) < MAX_IDLE_CONNECTIONS:
                self._idle.append(conn)
                return
        conn.close()

    def _headers(self, content_type: str | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "neuron-k8s/0.1"}
        token = self._token
        if self._token_file:
            # Projected service account tokens rotate: read the file each time.
            with open(self._token_file) as f:
                token = f.read().strip()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    def _url(self, path: str, params: dict[str, Any] | None) -> str:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        return f"{self._prefix}{path}{query}"

    def request(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """One request; `timeout` (seconds) overrides the client's for this one (a long list)."""
        data = json.dumps(body).encode() if body is not None else None
        headers = self._headers(content_type if data is not None else None)
        url = self._url(path, params)
        for attempt in (1, 2):
            # The retry opens a fresh connection: the other idle ones may be as stale.
            conn = self._take_conn(timeout or self._timeout, fresh=attempt == 2)
            reused = conn.sock is not None
            try:
                conn.request(method, url, body=data, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
            except (OSError, http.client.HTTPException) as err:
                conn.close()
                # Only a kept-alive connection the server had closed is retried: after a
                # timeout the request may have been applied, and the caller's deadline is
                # shorter than two of them.
                stale = reused and not isinstance(err, TimeoutError)
                if attempt == 2 or not stale:
                    raise ApiError(0, "Unreachable", f"{method} {path}: {err}") from err
                continue
            if resp.will_close:
                conn.close()
            else:
                self._give_back(conn)
            if resp.status >= 400:
                raise _error_from(resp.status, raw)
            return loads(raw) if raw else {}
        raise AssertionError("unreachable")

    def get(
        self, path: str, params: dict[str, Any] | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        return self.request("GET", path, params, timeout=timeout)

    def merge_patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.request("PATCH", path, body=body, content_type="application/merge-patch+json")

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", path, body=body)

    def watch(self, path: str, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Yield watch events until the server ends the stream. An ERROR event with status 410
        (the resource version is too old) raises ApiError(410): the caller must list again."""
        query = dict(params or {})
        query["watch"] = "true"
        query.setdefault("allowWatchBookmarks", "true")
        timeout = float(query.get("timeoutSeconds", 300)) + 30
        if self._scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                self._host, self._port, timeout=timeout, context=self._ssl
            )
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        try:
            conn.request("GET", self._url(path, query), headers=self._headers())
            resp = conn.getresponse()
            if resp.status >= 400:
                raise _error_from(resp.status, resp.read())
            while True:
                line = resp.readline()
                if not line:
                    return
                if not line.strip():
                    continue
                event = loads(line)
                if event.get("type") == "ERROR":
                    status = event.get("object") or {}
                    raise ApiError(
                        int(status.get("code", 500)),
                        str(status.get("reason", "")),
                        str(status.get("message", "")),
                    )
                yield event
        finally:
            conn.close()


# A list is read in pages of this many objects, so that neither the API server's answer nor
# our parse of it holds every object of a large cluster at once.
LIST_PAGE = 500


_STREAM_ERRORS = (OSError, ValueError, http.client.HTTPException)


class Reflector:
    """Keeps a local view of a collection current: list (in pages of `page_size`, each within
    `list_timeout` seconds, the client's own timeout when None), then watch from the list's
    resource version; re-list when the server says the version is too old; reconnect with
    capped backoff when the server is away. Callbacks run on the reflector's own thread.

    on_synced(items) is called after every (re-)list with the full list, so the owner can
    replace its view wholesale; on_event(type, object) for each watch event after that;
    `transform` (trimming to what the owner reads) as each page or event is parsed. An object
    a callback raises for is logged with its key and skipped. A list is never retried for a
    callback's error: it would fail the same way forever, and never sync (an owner's
    on_synced isolates its objects with objects.for_each_object)."""

    def __init__(
        self,
        client: KubeClient,
        path: str,
        params: dict[str, Any] | None,
        on_event: Callable[[str, dict[str, Any]], None],
        on_synced: Callable[[list[dict[str, Any]]], None] | None = None,
        name: str = "",
        watch_timeout: int = 300,
        page_size: int = LIST_PAGE,
        list_timeout: float | None = None,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        self._client = client
        self._path = path
        self._params = dict(params or {})
        self._on_event = on_event
        self._on_synced = on_synced
        self.name = name or path
        self._watch_timeout = watch_timeout
        self._page_size = page_size
        self._list_timeout = list_timeout
        self._transform = transform
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.synced = threading.Event()
        self.skipped = 0  # objects a callback raised for, since start

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"reflector-{self.name}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _page(self, token: str) -> dict[str, Any]:
        params = dict(self._params, limit=self._page_size)
        if token:
            params["continue"] = token
        return self._client.get(self._path, params, timeout=self._list_timeout)

    def _list(self) -> str:
        items: list[dict[str, Any]] = []
        token = ""
        while True:
            try:
                doc = self._page(token)
            except ApiError as err:
                if err.status != 410 or not token:
                    raise
                # The continue token expired (the list took longer than the API server keeps
                # its snapshot): start over from a fresh one.
                log.warning("list expired between pages; listing again", reflector=self.name)
                items, token = [], ""
                continue
            self._collect(doc, items)
            meta = doc.get("metadata") or {}
            token = str(meta.get("continue") or "")
            if not token:
                break
            if self._stop.is_set():
                return ""
        if self._on_synced:
            try:
                self._on_synced(items)
            except Exception as err:  # see the class docstring
                log.error(
                    "list callback failed; watching on from this list",
                    reflector=self.name,
                    error=f"{type(err).__name__}: {err}",
                    exc_info=True,
                )
        self.synced.set()
        return str(meta.get("resourceVersion", ""))

    def _collect(self, page: dict[str, Any], items: list[dict[str, Any]]) -> None:
        kind = str(page.get("kind", ""))

        def add(obj: dict[str, Any]) -> None:
            if kind.endswith("List"):
                # Items of a list carry no kind; callbacks are easier to write when they do.
                obj.setdefault("kind", kind[: -len("List")])
            items.append(self._keep(obj))

        self.skipped += for_each_object(page.get("items") or [], add, self.name)

    def _keep(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self._transform(obj) if self._transform is not None else obj

    def _deliver(self, event: dict[str, Any]) -> None:
        kind = str(event.get("type"))
        obj = event.get("object") or {}
        self.skipped += for_each_object(
            [obj], lambda o: self._on_event(kind, self._keep(o)), self.name
        )

    def _run(self) -> None:
        backoff = 0.5
        version = ""
        while not self._stop.is_set():
            try:
                if not version:
                    version = self._list()
                    log.debug("listed", reflector=self.name, resource_version=version)
                params = dict(
                    self._params, resourceVersion=version, timeoutSeconds=self._watch_timeout
                )
                for event in self._client.watch(self._path, params):
                    if self._stop.is_set():
                        return
                    obj = event.get("object") or {}
                    rv = (obj.get("metadata") or {}).get("resourceVersion")
                    if rv:
                        version = str(rv)
                    if event.get("type") != "BOOKMARK":
                        self._deliver(event)
                backoff = 0.5
            except Exception as err:
                if self._stop.is_set():
                    return  # stopped: a cut stream is the stop's doing, not news
                if isinstance(err, ApiError) and err.status == 410:
                    version = ""  # too old: list again
                    continue
                if isinstance(err, ApiError):
                    log.warning("watch failed", reflector=self.name, error=str(err))
                elif isinstance(err, _STREAM_ERRORS):  # unreachable, cut, or not JSON
                    log.warning("watch interrupted", reflector=self.name, error=str(err))
                else:  # a bug here must not kill the view silently: list again
                    log.error("reflector failed", reflector=self.name, exc_info=True)
                    version = ""
                self._stop.wait(backoff * (1 + random.random()))
                backoff = min(backoff * 2, 30.0)
