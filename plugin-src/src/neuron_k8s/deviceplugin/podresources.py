"""Client of the kubelet's PodResources API v1 (List): which device IDs the kubelet assigned to
the containers of active pods, for the resources this plugin serves."""

from __future__ import annotations

import os

import grpc

from neuron_k8s.allocator import Resource
from neuron_k8s.logs import get_logger

from .api import SERVED, pr_grpc, pr_pb, target
from .ledger import KubeletView

log = get_logger("deviceplugin.podresources")

SERVED_NAMES = {r.value: r for r in SERVED}


class PodResourcesClient:
    def __init__(self, socket_path: str, timeout: float = 2.0) -> None:
        self.socket_path = socket_path
        self._timeout = timeout
        self._channel: grpc.Channel | None = None
        self._stub: pr_grpc.PodResourcesListerStub | None = None
        self._failing = False

    def _connect(self) -> pr_grpc.PodResourcesListerStub:
        if self._stub is None:
            self._channel = grpc.insecure_channel(target(self.socket_path))
            self._stub = pr_grpc.PodResourcesListerStub(self._channel)
        return self._stub

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
        self._channel, self._stub = None, None

    def list(self) -> KubeletView | None:
        """The kubelet's assignments, or None when the API cannot be reached (logged once per
        outage, not every poll)."""
        if not os.path.exists(self.socket_path):
            self._note_failure("socket missing")
            return None
        try:
            resp = self._connect().List(pr_pb.ListPodResourcesRequest(), timeout=self._timeout)
        except grpc.RpcError as err:
            self.close()  # the kubelet may have restarted: dial again next time
            self._note_failure(f"{err.code().name}: {err.details()}")
            return None
        if self._failing:
            log.info("pod resources api reachable", socket=self.socket_path)
            self._failing = False
        view: KubeletView = {}
        for pod in resp.pod_resources:
            for c in pod.containers:
                by_res: dict[Resource, tuple[int, ...]] = {}
                for dev in c.devices:
                    resource = SERVED_NAMES.get(dev.resource_name)
                    if resource is None:
                        continue
                    try:
                        ids = tuple(sorted(int(i) for i in dev.device_ids))
                    except ValueError:
                        continue  # not one of ours
                    by_res[resource] = tuple(sorted(set(by_res.get(resource, ())) | set(ids)))
                if by_res:
                    view[(pod.namespace, pod.name, c.name)] = by_res
        return view

    def _note_failure(self, why: str) -> None:
        if not self._failing:
            log.warning(
                "pod resources api unavailable: usage by pods placed without the extender is "
                "known only from this plugin's recent grants",
                socket=self.socket_path,
                reason=why,
            )
            self._failing = True
