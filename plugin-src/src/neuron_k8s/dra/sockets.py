"""The driver's two sockets and the kubelet's registration: the DRA service (and the health
service, which the kubelet calls on the same endpoint) on <plugins-dir>/<driver>/dra.sock, then
the registration service on <registry-dir>/<driver>-reg.sock, which the kubelet's plugin watcher
finds, asks GetInfo and answers with NotifyRegistrationStatus. With a pod UID (a rolling update
runs two drivers on one node for a while) both names carry it, so the new driver never takes
the old one's files. A watchdog serves again when a socket file disappears."""

from __future__ import annotations

import contextlib
import os
import threading
from concurrent import futures

import grpc

from neuron_k8s._proto import pluginregistration_v1_pb2 as reg_pb
from neuron_k8s._proto import pluginregistration_v1_pb2_grpc as reg_grpc
from neuron_k8s.logs import get_logger

from .health import MAX_STREAMS
from .instances import dra_socket_name
from .metrics import Metrics
from .service import DraService

log = get_logger("dra.sockets")
PLUGIN_TYPE = "DRAPlugin"


class _Registration(reg_grpc.RegistrationServicer):
    def __init__(
        self, driver: str, endpoint: str, services: list[str], on_status: RegistrationState
    ) -> None:
        self._driver = driver
        self._endpoint = endpoint
        self._services = services
        self._state = on_status

    def GetInfo(
        self, request: reg_pb.InfoRequest, context: grpc.ServicerContext
    ) -> reg_pb.PluginInfo:
        return reg_pb.PluginInfo(
            type=PLUGIN_TYPE,
            name=self._driver,
            endpoint=self._endpoint,
            supported_versions=self._services,
        )

    def NotifyRegistrationStatus(
        self, request: reg_pb.RegistrationStatus, context: grpc.ServicerContext
    ) -> reg_pb.RegistrationStatusResponse:
        self._state.set(request.plugin_registered, request.error)
        return reg_pb.RegistrationStatusResponse()


class RegistrationState:
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self.registered = threading.Event()
        self.error = ""

    def set(self, registered: bool, error: str) -> None:
        self.error = error
        if registered:
            self.registered.set()
            log.info("registered with the kubelet")
        else:
            self.registered.clear()
            log.error("the kubelet refused the registration", error=error)
        self._metrics.registered.set(1 if registered else 0)


def socket_paths(driver: str, plugins_dir: str, registry_dir: str, pod_uid: str) -> tuple[str, str]:
    suffix = f"-{pod_uid}" if pod_uid else ""
    return (
        os.path.join(plugins_dir, driver, dra_socket_name(pod_uid)),
        os.path.join(registry_dir, f"{driver}{suffix}-reg.sock"),
    )


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


class Sockets:
    def __init__(
        self,
        service: DraService,
        driver: str,
        plugins_dir: str,
        registry_dir: str,
        pod_uid: str,
        metrics: Metrics,
        interval: float = 1.0,
    ) -> None:
        self._service = service
        self.driver = driver
        self.registry_dir = registry_dir
        self.dra_socket, self.reg_socket = socket_paths(driver, plugins_dir, registry_dir, pod_uid)
        self.state = RegistrationState(metrics)
        self._interval = interval
        self._servers: list[grpc.Server] = []
        self._served: tuple[tuple[int, int] | None, tuple[int, int] | None] = (None, None)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def serve(self) -> None:
        """(Re)serve both sockets, the DRA one first: the kubelet may call it as soon as it
        sees the registration socket."""
        with self._lock:
            self._shutdown()
            # Each open health stream holds a thread: the DRA calls keep their 4.
            dra = grpc.server(futures.ThreadPoolExecutor(max_workers=4 + MAX_STREAMS))
            self._service.add_to(dra)
            reg = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
            reg_grpc.add_RegistrationServicer_to_server(
                _Registration(self.driver, self.dra_socket, self._service.services, self.state),
                reg,
            )
            for server, path in ((dra, self.dra_socket), (reg, self.reg_socket)):
                os.makedirs(os.path.dirname(path), exist_ok=True)
                _unlink(path)
                server.add_insecure_port(f"unix://{path}")
                server.start()
                self._servers.append(server)
            self._served = (_identity(self.dra_socket), _identity(self.reg_socket))
            log.info("serving", dra=self.dra_socket, registration=self.reg_socket)

    def start(self) -> None:
        self.serve()
        self._thread = threading.Thread(target=self._watch, name="sockets", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(self._interval):
            now = (_identity(self.dra_socket), _identity(self.reg_socket))
            if now != self._served and not self._stop.is_set():
                log.warning("a socket file went away, serving again")
                self.state.registered.clear()
                try:
                    self.serve()
                except Exception as err:  # keep watching: the next round tries again
                    log.error("serving failed", error=str(err))

    def others_registered(self) -> bool:
        """Whether another instance of this driver (a rolling update's) has a registration
        socket here: then this one's slices are that one's too, and must stay."""
        try:
            names = os.listdir(self.registry_dir)
        except OSError:
            return False
        mine = os.path.basename(self.reg_socket)
        return any(
            n != mine and n.startswith(f"{self.driver}-") and n.endswith("-reg.sock") for n in names
        )

    def _shutdown(self) -> None:
        for server in self._servers:
            server.stop(grace=None)
        self._servers = []

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            self._shutdown()
            for path in (self.reg_socket, self.dra_socket):
                _unlink(path)


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
