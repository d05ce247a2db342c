"""One gRPC DevicePlugin server per resource, each on its own unix socket."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc

from neuron_k8s.allocator import Resource
from neuron_k8s.logs import get_logger

from .allocation import DEVICE_PERMISSIONS, AllocationError, AllocationService
from .api import HEALTHY, UNHEALTHY, pb, pb_grpc, socket_name, target
from .metrics import Metrics
from .state import PluginState

log = get_logger("deviceplugin.server")

# How often an idle ListAndWatch stream checks that its client is still there.
STREAM_CHECK_SECONDS = 1.0


class DevicePluginServicer(pb_grpc.DevicePluginServicer):
    def __init__(
        self,
        resource: Resource,
        state: PluginState,
        allocation: AllocationService,
        metrics: Metrics,
    ) -> None:
        self.resource = resource
        self.state = state
        self.allocation = allocation
        self.metrics = metrics

    def GetDevicePluginOptions(
        self, request: pb.Empty, context: grpc.ServicerContext
    ) -> pb.DevicePluginOptions:
        return pb.DevicePluginOptions(
            pre_start_required=False, get_preferred_allocation_available=True
        )

    def ListAndWatch(
        self, request: pb.Empty, context: grpc.ServicerContext
    ) -> Iterator[pb.ListAndWatchResponse]:
        last = None
        log.info("list and watch opened", resource=self.resource.value)
        while context.is_active() and not self.state.stopping:
            generation, view = self.state.view(self.resource)
            if view != last:
                last = view
                yield pb.ListAndWatchResponse(
                    devices=[pb.Device(ID=i, health=HEALTHY if ok else UNHEALTHY) for i, ok in view]
                )
            self.state.wait_change(generation, STREAM_CHECK_SECONDS)
        log.info("list and watch closed", resource=self.resource.value)

    def GetPreferredAllocation(
        self, request: pb.PreferredAllocationRequest, context: grpc.ServicerContext
    ) -> pb.PreferredAllocationResponse:
        try:
            responses = [
                pb.ContainerPreferredAllocationResponse(
                    deviceIDs=self.allocation.preferred(
                        self.resource,
                        list(r.available_deviceIDs),
                        list(r.must_include_deviceIDs),
                        r.allocation_size,
                    )
                )
                for r in request.container_requests
            ]
        except AllocationError as err:
            self.metrics.errors.labels("bad_request").inc()
            context.abort(err.code, err.message)
        except Exception as err:
            self._internal(context, "preferred allocation failed", err)
        return pb.PreferredAllocationResponse(container_responses=responses)

    def Allocate(
        self, request: pb.AllocateRequest, context: grpc.ServicerContext
    ) -> pb.AllocateResponse:
        try:
            grants = self.allocation.allocate(
                self.resource, [list(r.devices_ids) for r in request.container_requests]
            )
        except AllocationError as err:
            if err.code is grpc.StatusCode.INVALID_ARGUMENT:
                self.metrics.errors.labels("bad_request").inc()
            context.abort(err.code, err.message)
        except Exception as err:
            self._internal(context, "allocate failed", err)
        return pb.AllocateResponse(
            container_responses=[
                pb.ContainerAllocateResponse(
                    envs=g.env,
                    devices=[
                        pb.DeviceSpec(container_path=p, host_path=p, permissions=DEVICE_PERMISSIONS)
                        for p in g.device_nodes
                    ],
                )
                for g in grants
            ]
        )

    def PreStartContainer(
        self, request: pb.PreStartContainerRequest, context: grpc.ServicerContext
    ) -> pb.PreStartContainerResponse:
        return pb.PreStartContainerResponse()

    def _internal(self, context: grpc.ServicerContext, event: str, err: Exception) -> None:
        self.metrics.errors.labels("internal").inc()
        log.error(event, resource=self.resource.value, error=str(err), exc_info=True)
        context.abort(grpc.StatusCode.INTERNAL, f"{event}: {err}")


def _inode(path: str) -> int | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st.st_ino if stat.S_ISSOCK(st.st_mode) else None


class ResourceServer:
    """The gRPC server of one resource. It can be stopped and started again (after the kubelet
    deleted the socket, or refused the path) with the same servicer and state; each start
    serves on a socket file name of its own in `plugin_dir` (api.socket_name)."""

    def __init__(
        self, servicer: DevicePluginServicer, plugin_dir: str, stem: str, workers: int = 8
    ) -> None:
        self.servicer = servicer
        self.resource = servicer.resource
        self.plugin_dir = plugin_dir
        self.stem = stem
        self.socket_path = os.path.join(plugin_dir, socket_name(stem))
        self._workers = workers
        self._server: grpc.Server | None = None
        self._inode: int | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            # A start serves on a new name; the file of the previous one goes.
            self._stop_locked(remove=True)
            self.socket_path = os.path.join(self.plugin_dir, socket_name(self.stem))
            server = grpc.server(
                ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="dp-grpc")
            )
            pb_grpc.add_DevicePluginServicer_to_server(self.servicer, server)
            server.add_insecure_port(target(self.socket_path))
            server.start()
            self._server = server
            self._inode = _inode(self.socket_path)
            log.info("serving", resource=self.resource.value, socket=self.socket_path)

    def serving(self) -> bool:
        """True while our socket file is still in place (the kubelet deletes it on restart)."""
        return (
            self._server is not None
            and self._inode is not None
            and (_inode(self.socket_path) == self._inode)
        )

    def stop(self, remove: bool = True) -> None:
        with self._lock:
            self._stop_locked(remove)

    def _stop_locked(self, remove: bool) -> None:
        if self._server is not None:
            self._server.stop(grace=0.5).wait(2.0)
            self._server = None
        if remove and self._inode is not None and _inode(self.socket_path) == self._inode:
            # Only our own socket: a new plugin may already have taken the path.
            os.unlink(self.socket_path)
        self._inode = None
