"""The plugin's own Node object: a label it may read at start (fake mode, real-mode instance
type), and the annotation listing its unhealthy devices, kept current by a writer thread."""

from __future__ import annotations

import threading
import time
from typing import Any

from neuron_k8s.kube import ApiError, KubeClient
from neuron_k8s.logs import get_logger
from neuron_k8s.pods import UNHEALTHY_DEVICES

from .metrics import Metrics

log = get_logger("deviceplugin.node")


def read_node(client: KubeClient, node: str, timeout: float = 30.0) -> dict[str, Any]:
    """The Node object. Retries while the API is unreachable, up to `timeout`, then raises
    the last error."""
    deadline = time.monotonic() + timeout
    delay = 0.5
    while True:
        try:
            return client.get(f"/api/v1/nodes/{node}")
        except ApiError as err:
            if err.status not in (0, 429, 500, 502, 503, 504) or time.monotonic() > deadline:
                raise
            log.warning("reading node failed, retrying", node=node, error=str(err))
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def node_label(doc: dict[str, Any], label: str) -> str | None:
    value = ((doc.get("metadata") or {}).get("labels") or {}).get(label)
    return str(value) if value is not None else None


def read_node_label(client: KubeClient, node: str, label: str, timeout: float = 30.0) -> str | None:
    """A label of the node (None if the node has no such label)."""
    return node_label(read_node(client, node, timeout), label)


class NodeAnnotator:
    """Writes `neuron.k8s.local/unhealthy-devices` (comma-separated indices) with a merge patch
    of that single key while some device is unhealthy, and removes the key when all are
    healthy (also at start, clearing what an earlier run left). The annotation outlives the
    plugin: the extender must keep avoiding a bad device while the plugin restarts, and the
    plugin's first health check rewrites it. The latest value wins, failures retry."""

    def __init__(self, client: KubeClient, node: str, metrics: Metrics, retry: float = 5.0) -> None:
        self._client = client
        self._node = node
        self._metrics = metrics
        self._retry = retry
        self._wanted: str | None = None
        self._written: str | None = None
        self._wake = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="node-annotator", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify_all()

    def set(self, unhealthy: frozenset[int]) -> None:
        with self._wake:
            self._wanted = ",".join(str(d) for d in sorted(unhealthy))
            self._wake.notify_all()

    def _run(self) -> None:
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._stopped or self._wanted != self._written)
                if self._stopped:
                    return
                value = self._wanted
            body = {"metadata": {"annotations": {UNHEALTHY_DEVICES: value or None}}}
            try:
                self._client.merge_patch(f"/api/v1/nodes/{self._node}", body)
                self._written = value
                log.info("node annotation written", node=self._node, unhealthy=value)
            except ApiError as err:
                self._metrics.errors.labels("api_node_patch").inc()
                log.warning("node annotation failed, will retry", node=self._node, error=str(err))
                with self._wake:
                    self._wake.wait(self._retry)
