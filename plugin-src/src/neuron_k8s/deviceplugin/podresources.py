"""Client of the kubelet's PodResources API v1 (List): which device IDs the kubelet assigned to
the app and sidecar containers of its active pods (regular init containers are never listed),
for the resources this plugin serves, and which pods it has at all."""

from __future__ import annotations

import os
import threading
import time

import grpc

from neuron_k8s.allocator import Resource
from neuron_k8s.logs import get_logger

from .api import SERVED, pr_grpc, pr_pb, target
from .ledger import Listing, Snapshot

log = get_logger("deviceplugin.podresources")

SERVED_NAMES = {r.value: r for r in SERVED}
# A restarted kubelet must be dialled again soon, not after gRPC's default backoff of minutes.
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
]


class PodResourcesClient:
    """Safe to share between threads: one channel, which gRPC redials by itself; no call ever
    closes it under another."""

    # What is lost while the API cannot be reached, for the log.
    UNAVAILABLE = (
        "pod resources api unavailable: the plugin cannot tell which pod the kubelet "
        "is admitting, and knows what is in use only from its own answers"
    )

    def __init__(self, socket_path: str, timeout: float = 2.0, unavailable: str = "") -> None:
        self.socket_path = socket_path
        self._timeout = timeout
        self._unavailable = unavailable or self.UNAVAILABLE
        self._channel = grpc.insecure_channel(target(socket_path), options=CHANNEL_OPTIONS)
        self._stub = pr_grpc.PodResourcesListerStub(self._channel)
        self._lock = threading.Lock()  # guards _failing only
        self._failing = False

    def close(self) -> None:
        self._channel.close()

    def list(self) -> Snapshot | None:
        """The kubelet's assignments, or None when the API cannot be reached (logged once per
        outage, not every call)."""
        taken = time.monotonic()
        if not os.path.exists(self.socket_path):
            self._note(f"socket {self.socket_path} missing")
            return None
        try:
            resp = self._stub.List(pr_pb.ListPodResourcesRequest(), timeout=self._timeout)
        except grpc.RpcError as err:
            self._note(f"{err.code().name}: {err.details()}")
            return None
        self._note(None)
        containers: Listing = {}
        pods = set()
        for pod in resp.pod_resources:
            pods.add((pod.namespace, pod.name))
            for c in pod.containers:
                by_res: dict[Resource, set[int]] = {}
                for dev in c.devices:
                    resource = SERVED_NAMES.get(dev.resource_name)
                    if resource is None:
                        continue
                    try:
                        by_res.setdefault(resource, set()).update(int(i) for i in dev.device_ids)
                    except ValueError:
                        continue  # not one of ours
                if by_res:
                    key = (pod.namespace, pod.name, c.name)
                    containers[key] = {r: tuple(sorted(i)) for r, i in by_res.items()}
        return Snapshot(containers, frozenset(pods), taken)

    def _note(self, failure: str | None) -> None:
        with self._lock:
            was, self._failing = self._failing, failure is not None
        if failure is not None and not was:
            log.warning(self._unavailable, socket=self.socket_path, reason=failure)
        elif failure is None and was:
            log.info("pod resources api reachable", socket=self.socket_path)
