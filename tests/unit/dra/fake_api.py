"""A stand-in for the Kubernetes API, for driving the DRA driver in tests and in
plugin-src/bench/bench_dra.py: a small HTTP server on 127.0.0.1 answering the paths the driver
calls. A Node (get), ResourceSlices (list by field selector, create with a dry run and
generateName, replace with an optimistic-concurrency check, delete; validated as the API
server of `version` validates their devices and counters (slice_rules.py: 1.37 by default, or
1.34, which wants counters in the slice of the devices consuming them), stripped of counters
when `keeps_counters` is off (gate DRAPartitionableDevices off) and of taints when
`keeps_taints` is off (gate DRADeviceTaints off), and given the `timeAdded` the API server
sets on taints), Events (create, kept in `events`) and ResourceClaims (list, and a watch
that streams JSON-line events from the resource version the list returned, as
neuron_k8s.kube.Reflector expects), and Pods likewise (list and watch, by field selector).
The tests add, modify and delete claims and pods, read the slices,
and delete every slice as the kubelet does when it starts.
"""

from __future__ import annotations

import copy
import json
import queue
import threading
import urllib.parse
import uuid
from collections.abc import Iterable, Mapping
from http.server import ThreadingHTTPServer
from typing import Any

from jsonhttp import JsonHandler, write_kubeconfig
from slice_rules import errors_1_34, errors_1_37

DRIVER = "neuron.aws.com"
SLICES = "/apis/resource.k8s.io/v1/resourceslices"
EVENTS = "/api/v1/namespaces/default/events"
TIME_ADDED = "2026-12-01T10:00:00Z"
CLAIMS = "/apis/resource.k8s.io/v1/resourceclaims"
PODS = "/api/v1/pods"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "reason": reason,
        "message": message,
        "code": code,
    }


def _field(doc: Mapping[str, Any], dotted: str) -> Any:
    value: Any = doc
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def matches(doc: Mapping[str, Any], selector: str) -> bool:
    """A field selector of `a.b=value` terms joined by commas, all of which must hold."""
    for term in filter(None, selector.split(",")):
        key, _, want = term.partition("=")
        if str(_field(doc, key)) != want:
            return False
    return True


def slice_errors(spec: Mapping[str, Any], version: str = "1.37") -> list[str]:
    """What an API server of `version` (1.37 or 1.34) refuses in a slice (slice_rules.py)."""
    return errors_1_34(spec) if version == "1.34" else errors_1_37(spec)


class FakeApi:
    def __init__(self) -> None:
        # False: as an API server whose DRAPartitionableDevices gate is off, which drops the
        # counter fields of every slice written.
        self.keeps_counters = True
        # False: as one whose DRADeviceTaints gate is off, which drops the devices' taints.
        self.keeps_taints = True
        self.version_rules = "1.37"  # or "1.34"
        self.events: list[dict[str, Any]] = []
        self.refuse_events = False  # answer 403 to Events, as without the RBAC for them
        self.nodes: dict[str, dict[str, Any]] = {}
        self.slices: dict[str, dict[str, Any]] = {}
        self.claims: dict[str, dict[str, Any]] = {}  # by uid
        self.pods: dict[str, dict[str, Any]] = {}  # by uid
        self.requests: list[tuple[str, str]] = []  # (method, path with query), watches too
        self.version = 1
        # claim and pod events, by version and path
        self._events: list[tuple[int, str, dict[str, Any]]] = []
        self._watchers: list[tuple[str, queue.Queue[dict[str, Any] | None]]] = []
        self._lock = threading.Lock()
        api = self

        class Handler(JsonHandler):
            def _body(self) -> dict[str, Any]:
                length = int(self.headers.get("Content-Length", "0"))
                return dict(json.loads(self.rfile.read(length) or b"{}"))

            def _route(self, method: str) -> None:
                url = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                with api._lock:
                    api.requests.append((method, self.path))
                body = self._body() if method in ("POST", "PUT") else None
                watched = url.path in (CLAIMS, PODS)
                if method == "GET" and watched and query.get("watch") == "true":
                    return self._watch(url.path, query)
                code, doc = api.handle(method, url.path, query, body)
                self._send(code, doc)

            def do_GET(self) -> None:
                self._route("GET")

            def do_POST(self) -> None:
                self._route("POST")

            def do_PUT(self) -> None:
                self._route("PUT")

            def do_DELETE(self) -> None:
                self._route("DELETE")

            def _watch(self, path: str, query: dict[str, str]) -> None:
                q: queue.Queue[dict[str, Any] | None] = queue.Queue()
                since = int(query.get("resourceVersion") or 0)
                selector = query.get("fieldSelector", "")
                with api._lock:
                    # Events after the listed version first, then live ones: none is lost
                    # between the reflector's list and its watch.
                    for version, where, event in api._events:
                        if version > since and where == path:
                            q.put(event)
                    api._watchers.append((path, q))
                try:
                    self._stream(q, lambda e: matches(e["object"], selector))
                finally:
                    with api._lock:
                        api._watchers.remove((path, q))

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        # A short poll: stop() waits for serve_forever to notice, once per test.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def start(self) -> FakeApi:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.end_watches()
        self._httpd.shutdown()
        self._httpd.server_close()

    def end_watches(self) -> None:
        """Close every open watch (an API server restart, or the test's end)."""
        with self._lock:
            for _, q in self._watchers:
                q.put(None)

    # --- request handling ----------------------------------------------------------------
    def handle(
        self, method: str, path: str, query: dict[str, str], body: dict[str, Any] | None
    ) -> tuple[int, dict[str, Any]]:
        with self._lock:
            if method == "GET" and path.startswith("/api/v1/nodes/"):
                node = self.nodes.get(path.rsplit("/", 1)[1])
                if node is None:
                    return 404, _status(404, "NotFound", f"nodes {path!r} not found")
                return 200, copy.deepcopy(node)
            if path == SLICES and method == "GET":
                return 200, self._list("ResourceSliceList", self.slices.values(), query)
            if method == "POST" and path == EVENTS and body is not None:
                if self.refuse_events:
                    return 403, _status(403, "Forbidden", "events is forbidden")
                self.events.append(copy.deepcopy(body))
                return 201, body
            if body is not None and path.startswith(SLICES):
                body = self._admit(body)
                errors = slice_errors(body.get("spec") or {}, self.version_rules)
                if errors:
                    return 422, _status(422, "Invalid", "; ".join(errors))
            if path == SLICES and method == "POST" and body is not None:
                return self._create_slice(body, query.get("dryRun") == "All")
            if path.startswith(SLICES + "/"):
                return self._one_slice(method, path[len(SLICES) + 1 :], body)
            if path == CLAIMS and method == "GET":
                return 200, self._list("ResourceClaimList", self.claims.values(), query)
            if path == PODS and method == "GET":
                return 200, self._list("PodList", self.pods.values(), query)
        return 404, _status(404, "NotFound", f"{method} {path}: no such path")

    def _list(
        self, kind: str, items: Iterable[dict[str, Any]], query: dict[str, str]
    ) -> dict[str, Any]:
        selector = query.get("fieldSelector", "")
        return {
            "kind": kind,
            "apiVersion": "resource.k8s.io/v1",
            "metadata": {"resourceVersion": str(self.version)},
            "items": [copy.deepcopy(i) for i in items if matches(i, selector)],
        }

    def _stamp(self, doc: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        doc["metadata"]["resourceVersion"] = str(self.version)
        return doc

    def _admit(self, body: dict[str, Any]) -> dict[str, Any]:
        """The body as the API server would store it."""
        doc = copy.deepcopy(body)
        if not self.keeps_counters:
            doc.get("spec", {}).pop("sharedCounters", None)
            for d in doc.get("spec", {}).get("devices") or []:
                d.pop("consumesCounters", None)
        for d in doc.get("spec", {}).get("devices") or []:
            if not self.keeps_taints:
                d.pop("taints", None)
            for t in d.get("taints") or []:
                t.setdefault("timeAdded", TIME_ADDED)
        return doc

    def _create_slice(self, body: dict[str, Any], dry_run: bool) -> tuple[int, dict[str, Any]]:
        meta = body.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = f"{meta['generateName']}{uuid.uuid4().hex[:5]}"
        name = str(meta.get("name") or "")
        if not name:
            return 422, _status(422, "Invalid", "metadata.name: Required value")
        if name in self.slices:
            return 409, _status(409, "AlreadyExists", f'resourceslices "{name}" already exists')
        doc = copy.deepcopy(body)
        doc["metadata"]["uid"] = str(uuid.uuid4())
        doc["metadata"].pop("resourceVersion", None)
        if dry_run:
            return 201, doc
        self.slices[name] = self._stamp(doc)
        return 201, copy.deepcopy(doc)

    def _one_slice(
        self, method: str, name: str, body: dict[str, Any] | None
    ) -> tuple[int, dict[str, Any]]:
        old = self.slices.get(name)
        if old is None:
            return 404, _status(404, "NotFound", f'resourceslices "{name}" not found')
        if method == "GET":
            return 200, copy.deepcopy(old)
        if method == "DELETE":
            del self.slices[name]
            self.version += 1
            return 200, copy.deepcopy(old)
        if method == "PUT" and body is not None:
            sent = (body.get("metadata") or {}).get("resourceVersion")
            if sent != old["metadata"]["resourceVersion"]:
                return 409, _status(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on resourceslices "{name}": the object has '
                    "been modified; please apply your changes to the latest version and try again",
                )
            doc = copy.deepcopy(body)
            doc["metadata"]["uid"] = old["metadata"]["uid"]
            self.slices[name] = self._stamp(doc)
            return 200, copy.deepcopy(doc)
        return 405, _status(405, "MethodNotAllowed", f"{method} on a resourceslice")

    def kubeconfig(self, path: str) -> str:
        return write_kubeconfig(path, self.url)

    # --- nodes -----------------------------------------------------------------------------
    def add_node(self, name: str, instance_type: str | None = None, uid: str = "") -> str:
        labels = {INSTANCE_TYPE_LABEL: instance_type} if instance_type else {}
        uid = uid or f"uid-node-{name}"
        with self._lock:
            self.nodes[name] = {
                "kind": "Node",
                "apiVersion": "v1",
                "metadata": {"name": name, "uid": uid, "labels": labels},
            }
        return uid

    # --- slices ----------------------------------------------------------------------------
    def node_slices(self, node: str, driver: str = DRIVER) -> list[dict[str, Any]]:
        """The slices of one node and driver, by name."""
        with self._lock:
            found = [
                copy.deepcopy(s)
                for s in self.slices.values()
                if s["spec"].get("nodeName") == node and s["spec"].get("driver") == driver
            ]
        return sorted(found, key=lambda s: str(s["metadata"]["name"]))

    def published_devices(self, node: str, driver: str = DRIVER) -> list[str]:
        """Names of the devices the node's slices offer, in slice order."""
        return [
            d["name"]
            for s in self.node_slices(node, driver)
            for d in s["spec"].get("devices") or []
        ]

    def delete_all_slices(self) -> None:
        """What a starting kubelet does to its node's slices (here: to every slice)."""
        with self._lock:
            self.slices.clear()
            self.version += 1

    # --- claims ----------------------------------------------------------------------------
    def _claim_event(self, kind: str, claim: dict[str, Any], path: str = CLAIMS) -> None:
        event = {"type": kind, "object": copy.deepcopy(claim)}
        self._events.append((self.version, path, event))
        for where, q in self._watchers:
            if where == path:
                q.put(event)

    def add_claim(self, claim: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            doc = self._stamp(copy.deepcopy(claim))
            uid = doc["metadata"]["uid"]
            kind = "MODIFIED" if uid in self.claims else "ADDED"
            self.claims[uid] = doc
            self._claim_event(kind, doc)
            return copy.deepcopy(doc)

    def modify_claim(self, claim: dict[str, Any]) -> dict[str, Any]:
        assert claim["metadata"]["uid"] in self.claims, "modify_claim of a claim never added"
        return self.add_claim(claim)

    def delete_claim(self, uid: str) -> None:
        with self._lock:
            doc = self.claims.pop(uid)
            self._stamp(doc)
            self._claim_event("DELETED", doc)

    def requests_since(self, mark: int) -> list[tuple[str, str]]:
        with self._lock:
            return list(self.requests[mark:])

    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    # --- pods ------------------------------------------------------------------------------
    def add_pod(self, pod: dict[str, Any]) -> dict[str, Any]:
        """Add or replace a pod (by uid), streamed to the pod watches its node matches."""
        with self._lock:
            doc = self._stamp(copy.deepcopy(pod))
            uid = doc["metadata"]["uid"]
            kind = "MODIFIED" if uid in self.pods else "ADDED"
            self.pods[uid] = doc
            self._claim_event(kind, doc, PODS)
            return copy.deepcopy(doc)

    def delete_pod(self, uid: str) -> None:
        with self._lock:
            doc = self.pods.pop(uid)
            self._stamp(doc)
            self._claim_event("DELETED", doc, PODS)
