"""Stand-ins for the kubelet and the Kubernetes API, for driving the device plugin in tests
and in plugin-src/bench/bench_deviceplugin.py.

FakeKubelet serves Registration on <dir>/kubelet.sock and, like the kubelet, dials each plugin
that registers and keeps a ListAndWatch stream open, remembering the latest device list.
FakeApi is a small HTTP server on 127.0.0.1 answering the few paths the plugin calls (pods of
a node: list, watch, merge patch; a node: get, merge patch), and recording the patches.
"""

from __future__ import annotations

import copy
import json
import os
import queue
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from http.server import ThreadingHTTPServer
from typing import Any

import grpc
from jsonhttp import JsonHandler, write_kubeconfig
from neuron_k8s.deviceplugin.api import KUBELET_SOCKET, pb, pb_grpc, pr_grpc, pr_pb, target
from waiting import wait_until as wait_until  # re-exported to the tests

NEURON = "aws.amazon.com/neuron"
NEURONCORE = "aws.amazon.com/neuroncore"


class _Registration(pb_grpc.RegistrationServicer):
    def __init__(self, kubelet: FakeKubelet) -> None:
        self.kubelet = kubelet

    def Register(self, request: pb.RegisterRequest, context: grpc.ServicerContext) -> pb.Empty:
        path = os.path.join(self.kubelet.plugin_dir, request.endpoint)
        with self.kubelet._lock:
            held = self.kubelet.hold > 0
            self.kubelet.hold -= 1 if held else 0
        if held:
            # A 1.37 kubelet's answer for a path it still holds (pkg/kubelet/cm/devicemanager).
            self.kubelet.refused.append(request.endpoint)
            context.abort(grpc.StatusCode.UNKNOWN, f"device plugin already connected: {path}")
        self.kubelet._on_register(request)
        return pb.Empty()


class FakeKubelet:
    def __init__(self, plugin_dir: str, watch: bool = True) -> None:
        self.plugin_dir = plugin_dir
        self.socket = os.path.join(plugin_dir, KUBELET_SOCKET)
        self.watch = watch
        self.registrations: list[pb.RegisterRequest] = []
        # Registrations to refuse as "already connected", and the endpoints refused so.
        self.hold = 0
        self.refused: list[str] = []
        self.devices: dict[str, list[tuple[str, str]]] = {}
        self.updates: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server: grpc.Server | None = None
        self._channels: list[grpc.Channel] = []

    # --- lifecycle -----------------------------------------------------------------------
    def start(self) -> FakeKubelet:
        os.makedirs(self.plugin_dir, exist_ok=True)
        server = grpc.server(ThreadPoolExecutor(max_workers=4))
        pb_grpc.add_RegistrationServicer_to_server(_Registration(self), server)
        server.add_insecure_port(target(self.socket))
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=0).wait(2)
            self._server = None
        for ch in self._channels:
            ch.close()
        self._channels.clear()
        if os.path.exists(self.socket):
            os.unlink(self.socket)

    def restart(self) -> None:
        """What a kubelet restart does to the directory: its socket goes away, every plugin
        socket is deleted, and a new kubelet.sock appears."""
        self.stop()
        for name in os.listdir(self.plugin_dir):
            if name.endswith(".sock"):
                os.unlink(os.path.join(self.plugin_dir, name))
        with self._lock:
            self.devices.clear()
        self.start()

    # --- registration and the streams it opens -------------------------------------------
    def _on_register(self, request: pb.RegisterRequest) -> None:
        with self._lock:
            self.registrations.append(request)
        if self.watch:
            threading.Thread(target=self._list_and_watch, args=(request,), daemon=True).start()

    def _list_and_watch(self, request: pb.RegisterRequest) -> None:
        channel = grpc.insecure_channel(target(os.path.join(self.plugin_dir, request.endpoint)))
        self._channels.append(channel)
        stub = pb_grpc.DevicePluginStub(channel)
        try:
            for resp in stub.ListAndWatch(pb.Empty()):
                with self._lock:
                    self.devices[request.resource_name] = [(d.ID, d.health) for d in resp.devices]
                    self.updates[request.resource_name] = (
                        self.updates.get(request.resource_name, 0) + 1
                    )
        except grpc.RpcError:
            pass  # the plugin or this stand-in went away

    def registered(self, resource: str) -> list[pb.RegisterRequest]:
        with self._lock:
            return [r for r in self.registrations if r.resource_name == resource]

    def health(self, resource: str) -> dict[str, str]:
        with self._lock:
            return dict(self.devices.get(resource, []))

    def unhealthy(self, resource: str) -> set[str]:
        return {i for i, h in self.health(resource).items() if h != "Healthy"}

    def stub(self, resource: str) -> pb_grpc.DevicePluginStub:
        """A client of the plugin socket of a registered resource, as the kubelet dials it."""
        request = self.registered(resource)[-1]
        channel = grpc.insecure_channel(target(os.path.join(self.plugin_dir, request.endpoint)))
        self._channels.append(channel)
        return pb_grpc.DevicePluginStub(channel)


def allocate(stub: pb_grpc.DevicePluginStub, *containers: list[str]) -> pb.AllocateResponse:
    return stub.Allocate(
        pb.AllocateRequest(
            container_requests=[pb.ContainerAllocateRequest(devices_ids=c) for c in containers]
        ),
        timeout=10,
    )


def preferred(
    stub: pb_grpc.DevicePluginStub, available: list[str], size: int, must: list[str] | None = None
) -> list[str]:
    resp = stub.GetPreferredAllocation(
        pb.PreferredAllocationRequest(
            container_requests=[
                pb.ContainerPreferredAllocationRequest(
                    available_deviceIDs=available,
                    must_include_deviceIDs=must or [],
                    allocation_size=size,
                )
            ]
        ),
        timeout=10,
    )
    return list(resp.container_responses[0].deviceIDs)


def ids(n: int) -> list[str]:
    return [str(i) for i in range(n)]


class FakePodResources(pr_grpc.PodResourcesListerServicer):
    """The kubelet's PodResources List: `assigned` maps (namespace, pod, container) to
    {resource name: [device IDs]}; `pods` holds the active pods listed with no IDs of ours
    (the pod being admitted, for one)."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self.assigned: dict[tuple[str, str, str], dict[str, list[str]]] = {}
        self.pods: set[tuple[str, str]] = set()
        self.calls = 0
        self._server = grpc.server(ThreadPoolExecutor(max_workers=2))
        pr_grpc.add_PodResourcesListerServicer_to_server(self, self._server)
        self._server.add_insecure_port(target(socket_path))

    def start(self) -> FakePodResources:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(grace=0).wait(2)

    def List(
        self, request: pr_pb.ListPodResourcesRequest, context: grpc.ServicerContext
    ) -> pr_pb.ListPodResourcesResponse:
        self.calls += 1
        pods: dict[tuple[str, str], list[pr_pb.ContainerResources]] = {
            key: [] for key in list(self.pods)
        }
        for (ns, pod, container), by_res in list(self.assigned.items()):
            pods.setdefault((ns, pod), []).append(
                pr_pb.ContainerResources(
                    name=container,
                    devices=[
                        pr_pb.ContainerDevices(resource_name=r, device_ids=i)
                        for r, i in by_res.items()
                    ],
                )
            )
        return pr_pb.ListPodResourcesResponse(
            pod_resources=[
                pr_pb.PodResources(name=pod, namespace=ns, containers=cs)
                for (ns, pod), cs in pods.items()
            ]
        )


class Admission:
    """What the kubelet's device manager does for one pod on a node (Kubernetes 1.34,
    pkg/kubelet/cm/devicemanager): the pod is listed by PodResources from the start of its
    admission; each container in order (init containers, then app containers) first reuses
    the IDs earlier regular init containers left, then asks GetPreferredAllocation among the
    healthy IDs no other container holds and takes the answer when valid (`follow`), then calls
    Allocate; the IDs are recorded (and listed, but for regular init containers) only once
    Allocate has returned. `held` keeps what the node's containers hold, per resource.

    It talks to the plugin through three callables, over gRPC (over_grpc) or in-process:
    preferred(resource, offered, size, must) -> IDs, allocate(resource, ids) -> the
    container's NEURON_RT_VISIBLE_CORES, health(resource) -> {ID: health}."""

    def __init__(
        self,
        pr: Any,
        preferred: Any,
        allocate: Any,
        health: Any,
    ) -> None:
        self.pr = pr
        self._preferred = preferred
        self._allocate = allocate
        self._health = health
        self.held: dict[str, dict[str, tuple[str, str]]] = {NEURON: {}, NEURONCORE: {}}

    @classmethod
    def over_grpc(cls, kubelet: FakeKubelet, pr: FakePodResources) -> Admission:
        def ask(resource: str, offered: list[str], size: int, must: list[str]) -> list[str]:
            return preferred(kubelet.stub(resource), offered, size, must)

        def serve(resource: str, ids: list[str]) -> str:
            resp = allocate(kubelet.stub(resource), ids)
            return str(resp.container_responses[0].envs["NEURON_RT_VISIBLE_CORES"])

        return cls(pr, ask, serve, kubelet.health)

    def admit(
        self,
        pod: str,
        containers: list[tuple[str, str, int]] | list[tuple[str, str, int, str]],
        namespace: str = "default",
        follow: bool = True,
    ) -> dict[str, str]:
        """containers: (name, resource, count[, "init"|"sidecar"|"app"]); returns each
        container's NEURON_RT_VISIBLE_CORES. Raises AssertionError where the kubelet would
        refuse the pod for its count, grpc.RpcError where Allocate refuses."""
        self.pr.pods.add((namespace, pod))
        reusable: dict[str, list[str]] = {}
        got = {}
        for c in containers:
            name, resource, count = c[0], c[1], c[2]
            stage = c[3] if len(c) > 3 else "app"  # type: ignore[misc]
            mine = reusable.get(resource, [])[:count]
            free = [
                i
                for i, h in self._health(resource).items()
                if h == "Healthy" and i not in self.held[resource]
            ]
            need = count - len(mine)
            assert len(free) >= need, (
                f"the kubelet refuses {namespace}/{pod}: requested number of devices "
                f"unavailable for {resource}. Requested: {need}, Available: {len(free)}"
            )
            if need:
                offered = sorted(set(free) | set(mine), key=int)
                answer = self._preferred(resource, offered, count, mine) if follow else []
                chosen = [i for i in answer if i in free and i not in mine][:need]
                chosen += [i for i in free if i not in chosen][: need - len(chosen)]
                mine = mine + chosen
            got[name] = self._allocate(resource, sorted(mine, key=int))
            for i in mine:
                self.held[resource][i] = (namespace, pod)
            if stage != "init":
                self.pr.assigned[(namespace, pod, name)] = {resource: sorted(mine, key=int)}
            pool = reusable.get(resource, [])
            if stage == "init":
                reusable[resource] = sorted(set(pool) | set(mine), key=int)
            else:
                reusable[resource] = [i for i in pool if i not in mine]
        return got

    def remove(self, pod: str, namespace: str = "default") -> None:
        """The pod's containers have stopped: the kubelet frees its IDs and stops listing it."""
        self.pr.pods.discard((namespace, pod))
        for key in [k for k in self.pr.assigned if k[:2] == (namespace, pod)]:
            del self.pr.assigned[key]
        for held in self.held.values():
            for i in [i for i, who in held.items() if who == (namespace, pod)]:
                del held[i]


# --- the API server ---
def merge(target_doc: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target_doc) if isinstance(target_doc, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge(out.get(key), value)
    return out


class FakeApi:
    def __init__(self) -> None:
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.nodes: dict[str, dict[str, Any]] = {}
        self.patches: list[tuple[str, str, dict[str, Any]]] = []  # (path, content type, body)
        self.events: list[dict[str, Any]] = []  # Events created
        self.requests: list[tuple[str, str]] = []
        self.delay = 0.0  # seconds every request but a watch waits: a slow API server
        self.version = 1
        self._lock = threading.Lock()
        self._watchers: list[queue.Queue[dict[str, Any] | None]] = []
        # Every pod event with its version: a watch from a list's resourceVersion gets what came
        # after it, as from the API server, even when it connects late.
        self._history: list[tuple[int, dict[str, Any]]] = []
        api = self

        class Handler(JsonHandler):
            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                api.requests.append(("GET", self.path))
                if url.path == "/api/v1/pods" and query.get("watch") == "true":
                    return self._watch(query)
                time.sleep(api.delay)
                if url.path == "/api/v1/pods":
                    return self._send(200, api.list_pods(query.get("fieldSelector", "")))
                if url.path.startswith("/api/v1/nodes/"):
                    node = api.nodes.get(url.path.rsplit("/", 1)[1])
                    if node is None:
                        return self._send(
                            404,
                            {
                                "kind": "Status",
                                "reason": "NotFound",
                                "message": "node not found",
                                "code": 404,
                            },
                        )
                    return self._send(200, node)
                return self._send(404, {"kind": "Status", "reason": "NotFound", "code": 404})

            def _watch(self, query: dict[str, str]) -> None:
                q: queue.Queue[dict[str, Any] | None] = queue.Queue()
                try:
                    since = int(query.get("resourceVersion") or "0")
                except ValueError:
                    since = 0
                with api._lock:
                    for version, event in api._history if since else ():
                        if version > since:
                            q.put(copy.deepcopy(event))
                    api._watchers.append(q)
                selector = query.get("fieldSelector", "")
                try:
                    self._stream(q, lambda event: api.matches(event["object"], selector))
                finally:
                    with api._lock:
                        api._watchers.remove(q)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                api.requests.append(("POST", self.path))
                if self.path == "/api/v1/namespaces/default/events":
                    with api._lock:
                        api.events.append(body)
                    return self._send(201, body)
                return self._send(404, {"kind": "Status", "reason": "NotFound", "code": 404})

            def do_PATCH(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                ctype = self.headers.get("Content-Type", "")
                api.requests.append(("PATCH", self.path))
                time.sleep(api.delay)
                with api._lock:
                    api.patches.append((self.path, ctype, body))
                parts = self.path.split("/")
                if self.path.startswith("/api/v1/namespaces/") and len(parts) == 7:
                    key = (parts[4], parts[6])
                    if key not in api.pods:
                        return self._send(
                            404, {"kind": "Status", "reason": "NotFound", "code": 404}
                        )
                    pod = api.put_pod(merge(api.pods[key], body), "MODIFIED")
                    return self._send(200, pod)
                if self.path.startswith("/api/v1/nodes/"):
                    name = parts[-1]
                    if name not in api.nodes:
                        return self._send(
                            404, {"kind": "Status", "reason": "NotFound", "code": 404}
                        )
                    api.nodes[name] = merge(api.nodes[name], body)
                    return self._send(200, api.nodes[name])
                return self._send(404, {"kind": "Status", "reason": "NotFound", "code": 404})

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def start(self) -> FakeApi:
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._lock:
            for q in self._watchers:
                q.put(None)
        self._httpd.shutdown()
        self._httpd.server_close()

    # --- objects -------------------------------------------------------------------------
    @staticmethod
    def matches(pod: dict[str, Any], selector: str) -> bool:
        if selector.startswith("spec.nodeName="):
            return (pod.get("spec") or {}).get("nodeName") == selector.split("=", 1)[1]
        return True

    def list_pods(self, selector: str) -> dict[str, Any]:
        with self._lock:
            items = [copy.deepcopy(p) for p in self.pods.values() if self.matches(p, selector)]
            return {
                "kind": "PodList",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": str(self.version)},
                "items": items,
            }

    def put_pod(self, pod: dict[str, Any], kind: str = "ADDED") -> dict[str, Any]:
        meta = pod["metadata"]
        with self._lock:
            self.version += 1
            meta["resourceVersion"] = str(self.version)
            self.pods[(meta["namespace"], meta["name"])] = pod
            self._publish({"type": kind, "object": copy.deepcopy(pod)})
        return copy.deepcopy(pod)

    def delete_pod(self, namespace: str, name: str) -> None:
        with self._lock:
            pod = self.pods.pop((namespace, name))
            self.version += 1
            self._publish({"type": "DELETED", "object": copy.deepcopy(pod)})

    def _publish(self, event: dict[str, Any]) -> None:
        """Under the lock: to every watcher now, and to the history for those to come."""
        self._history.append((self.version, event))
        for q in self._watchers:
            q.put(copy.deepcopy(event))

    def pod(self, namespace: str, name: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self.pods[(namespace, name)])

    def add_node(
        self,
        name: str,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
    ) -> None:
        meta = {"name": name, "labels": labels or {}, "annotations": annotations or {}}
        self.nodes[name] = {"kind": "Node", "metadata": meta}

    def kubeconfig(self, path: str) -> str:
        return write_kubeconfig(path, self.url)


def make_pod(
    name: str,
    node: str,
    containers: list[tuple[str, str, int]],
    annotations: dict[str, str] | None = None,
    namespace: str = "default",
    phase: str = "Pending",
    uid: str | None = None,
    init: list[tuple[str, str, int]] | None = None,
    sidecars: tuple[str, ...] = (),
) -> dict[str, Any]:
    """A pod bound to `node`; containers and init containers are (name, resource, count);
    init containers named in `sidecars` have restartPolicy Always."""

    def spec(c: str, r: str, n: int) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": c,
            "resources": {"limits": {r: str(n)}, "requests": {r: str(n)}},
        }
        if c in sidecars:
            out["restartPolicy"] = "Always"
        return out

    pod = {
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid or f"uid-{namespace}-{name}",
            "annotations": dict(annotations or {}),
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": {"nodeName": node, "containers": [spec(*c) for c in containers]},
        "status": {"phase": phase},
    }
    if init:
        pod["spec"]["initContainers"] = [spec(*c) for c in init]  # type: ignore[index]
    return pod
