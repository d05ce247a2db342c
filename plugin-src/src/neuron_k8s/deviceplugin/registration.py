"""Serving and registering with the kubelet, and doing it again when the kubelet restarts.

Order per resource (the device plugin rules): serve on the socket, check that the socket
answers, then Register with <dir>/kubelet.sock. A watcher thread then polls, every `interval`:
- our socket file gone or replaced (the kubelet deletes every socket in the directory when it
  starts): serve again on a fresh socket, then register again;
- kubelet.sock replaced (a new inode: the kubelet restarted) or registration not yet done:
  register again.
- the kubelet refuses our path as "already connected": serve again on a fresh socket name.
Only the gRPC servers are replaced; the state (health, ledger, progress) lives on. At start,
sockets of this plugin's earlier runs that no one answers on are removed.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Sequence

import grpc

from neuron_k8s.logs import get_logger

from .api import KUBELET_SOCKET, OWN_SOCKET, VERSION, pb, pb_grpc, target
from .metrics import Metrics
from .server import ResourceServer

log = get_logger("deviceplugin.registration")

# The kubelet's words when a registration names a path it already holds.
ALREADY_CONNECTED = "already connected"


def _identity(path: str) -> tuple[int, int, int] | None:
    """Which kubelet.sock this is: a restarted kubelet makes a new file (the inode number alone
    may be reused at once, the change time is not)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_ctime_ns)


class PluginManager:
    def __init__(
        self,
        servers: Sequence[ResourceServer],
        plugin_dir: str,
        metrics: Metrics,
        interval: float = 0.5,
        timeout: float = 5.0,
    ) -> None:
        self.servers = list(servers)
        self.plugin_dir = plugin_dir
        self.kubelet_socket = os.path.join(plugin_dir, KUBELET_SOCKET)
        self._metrics = metrics
        self._interval = interval
        self._timeout = timeout
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._kubelet: tuple[int, int, int] | None = None
        # resource -> (monotonic time of the next attempt, current backoff)
        self._retry: dict[str, tuple[float, float]] = {}
        self.registered: dict[str, bool] = {s.resource.value: False for s in self.servers}
        self._lock = threading.Lock()
        for s in self.servers:
            metrics.registered.labels(s.resource.value).set(0)

    @property
    def ready(self) -> bool:
        with self._lock:
            return all(self.registered.values())

    def start(self) -> None:
        os.makedirs(self.plugin_dir, exist_ok=True)
        for name in remove_stale_sockets(self.plugin_dir):
            log.info("removed a stale socket of an earlier run", socket=name)
        for s in self.servers:
            s.start()
        self.sync()
        self._thread = threading.Thread(target=self._run, name="registration", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for s in self.servers:
            s.stop(remove=True)
        self._set_all(False)

    def _set(self, resource: str, value: bool) -> None:
        with self._lock:
            self.registered[resource] = value
        self._metrics.registered.labels(resource).set(1 if value else 0)

    def _set_all(self, value: bool) -> None:
        for name in list(self.registered):
            self._set(name, value)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.sync()
            except Exception as err:  # the watcher must survive anything
                self._metrics.errors.labels("registration").inc()
                log.error("registration watcher failed", error=str(err), exc_info=True)

    def sync(self) -> None:
        """One pass of the watcher: re-serve lost sockets, register where needed."""
        restarted = [s for s in self.servers if not s.serving()]
        for s in restarted:
            log.warning(
                "socket lost, serving again", resource=s.resource.value, socket=s.socket_path
            )
            s.start()
            self._set(s.resource.value, False)
        kubelet = _identity(self.kubelet_socket)
        if kubelet is None:
            if self._kubelet is not None:
                log.warning(
                    "kubelet socket gone, waiting for the kubelet", socket=self.kubelet_socket
                )
                self._kubelet = None
                self._set_all(False)
            return
        if kubelet != self._kubelet:
            if self._kubelet is not None:
                log.info("kubelet restarted, registering again")
            self._kubelet = kubelet
            self._retry.clear()
            self._set_all(False)
        now = time.monotonic()
        for s in self.servers:
            name = s.resource.value
            due, _ = self._retry.get(name, (0.0, 0.0))
            if not self.registered[name] and not self._stop.is_set() and now >= due:
                self._register(s)

    def _register(self, server: ResourceServer) -> None:
        name = server.resource.value
        endpoint = os.path.basename(server.socket_path)
        try:
            # Serve before registering: the kubelet dials us as soon as it accepts.
            with grpc.insecure_channel(target(server.socket_path)) as own:
                pb_grpc.DevicePluginStub(own).GetDevicePluginOptions(
                    pb.Empty(), timeout=self._timeout
                )
            with grpc.insecure_channel(target(self.kubelet_socket)) as channel:
                pb_grpc.RegistrationStub(channel).Register(
                    pb.RegisterRequest(
                        version=VERSION,
                        endpoint=endpoint,
                        resource_name=name,
                        options=pb.DevicePluginOptions(
                            pre_start_required=False, get_preferred_allocation_available=True
                        ),
                    ),
                    timeout=self._timeout,
                )
        except grpc.RpcError as err:
            self._metrics.errors.labels("registration").inc()
            if ALREADY_CONNECTED in (err.details() or ""):
                # A kubelet (1.37) that still holds this path refuses it, and may keep refusing
                # it after that connection ends: a new name is never refused.
                server.start()
            _, backoff = self._retry.get(name, (0.0, self._interval / 2))
            backoff = min(backoff * 2, 10.0)
            self._retry[name] = (time.monotonic() + backoff, backoff)
            log.warning(
                "registration failed, will retry",
                resource=name,
                code=err.code().name,
                error=err.details(),
                retry_seconds=backoff,
            )
            return
        self._retry.pop(name, None)
        self._set(name, True)
        self._metrics.registrations.labels(name).inc()
        log.info("registered", resource=name, endpoint=endpoint, version=VERSION)


def remove_stale_sockets(plugin_dir: str) -> list[str]:
    """Remove the sockets of this plugin's earlier runs (its names, nobody listening): a killed
    plugin leaves its file behind, and with a name per start they would pile up. Another
    plugin's socket, or one that answers, is left alone."""
    try:
        names = sorted(os.listdir(plugin_dir))
    except OSError:
        return []
    removed = []
    for name in names:
        path = os.path.join(plugin_dir, name)
        if OWN_SOCKET.match(name) and not _answers(path):
            try:
                os.unlink(path)
            except OSError:
                continue
            removed.append(name)
    return removed


def _answers(path: str) -> bool:
    """False only when the socket certainly has no listener (refused); unsure counts as alive."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(path)
        except (ConnectionRefusedError, FileNotFoundError):
            return False
        except OSError:
            return True
    return True
