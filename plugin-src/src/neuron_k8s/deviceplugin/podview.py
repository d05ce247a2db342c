"""The pods bound to this node that carry an allocation from the extender, kept current by a
watch (a Reflector), and the writes the plugin makes to them (merge patches of single keys):
NEURON_ALLOCATED=true, and corrections of the allocation annotations."""

from __future__ import annotations

from typing import Any

from neuron_k8s.kube import ApiError, KubeClient, Reflector
from neuron_k8s.logs import get_logger
from neuron_k8s.pods import NEURON_ALLOCATED, merge_patch

from .ledger import PodRecord, pod_record
from .metrics import Metrics
from .state import PluginState

log = get_logger("deviceplugin.pods")


class PodSource:
    def __init__(self, client: KubeClient, node: str, state: PluginState, metrics: Metrics) -> None:
        self.client = client
        self.node = node
        self._state = state
        self._metrics = metrics
        self._path = "/api/v1/pods"
        self._params = {"fieldSelector": f"spec.nodeName={node}"}
        self._reflector = Reflector(
            client, self._path, self._params, self._on_event, self._on_synced, name="pods"
        )

    @property
    def synced(self) -> bool:
        return self._reflector.synced.is_set()

    def start(self) -> None:
        self._reflector.start()

    def stop(self) -> None:
        self._reflector.stop()

    def _records(self, items: list[dict[str, Any]]) -> list[PodRecord]:
        return [r for p in items if (r := pod_record(p, self._state.shape)) is not None]

    def _on_synced(self, items: list[dict[str, Any]]) -> None:
        records = self._records(items)
        with self._state.lock:
            self._state.ledger.set_pods(records)
            self._state.refresh()

    def _on_event(self, kind: str, pod: dict[str, Any]) -> None:
        meta = pod.get("metadata") or {}
        uid = str(meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}")
        record = None if kind == "DELETED" else pod_record(pod, self._state.shape)
        with self._state.lock:
            if kind == "DELETED":
                self._state.ledger.forget_pod(
                    str(meta.get("namespace", "")), str(meta.get("name", ""))
                )
            if record is None:
                self._state.ledger.drop_pod(uid)
            else:
                self._state.ledger.put_pod(record)
            self._state.refresh()

    def relist(self) -> bool:
        """List the node's pods now (the watch may lag behind a pod the kubelet is admitting).
        False when the API could not be reached; the cached view stays."""
        try:
            doc = self.client.get(self._path, self._params)
        except ApiError as err:
            self._metrics.errors.labels("api_list").inc()
            log.warning("listing pods failed", node=self.node, error=str(err))
            return False
        self._on_synced(doc.get("items") or [])
        return True

    def patch_annotations(self, record: PodRecord, annotations: dict[str, str]) -> bool:
        """Merge-patch single annotation keys of the pod, leaving every other one."""
        path = f"/api/v1/namespaces/{record.namespace}/pods/{record.name}"
        try:
            self.client.merge_patch(path, merge_patch(dict(annotations)))
        except ApiError as err:
            self._metrics.errors.labels("api_patch").inc()
            log.warning("patching pod annotations failed", pod=record.key, error=str(err))
            return False
        return True

    def mark_allocated(self, record: PodRecord) -> bool:
        """Merge-patch the single key NEURON_ALLOCATED=true, leaving every other annotation."""
        path = f"/api/v1/namespaces/{record.namespace}/pods/{record.name}"
        try:
            self.client.merge_patch(path, merge_patch({NEURON_ALLOCATED: "true"}))
        except ApiError as err:
            self._metrics.errors.labels("api_patch").inc()
            log.warning("marking pod allocated failed", pod=record.key, error=str(err))
            return False
        log.info("pod marked allocated", pod=record.key)
        return True
