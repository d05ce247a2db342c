"""Keeps this node's ResourceSlices equal to what the driver publishes: creates, replaces and
deletes its own slices (one pool named after the node), again after every change of the
devices' health and every `interval` seconds, because the kubelet deletes a node's slices when
it starts. Runs in its own thread; API errors are retried with capped backoff."""

from __future__ import annotations

import threading
from typing import Any

from neuron_k8s.kube import ApiError, KubeClient
from neuron_k8s.logs import get_logger

from .devices import slices_of

log = get_logger("dra.publisher")
SLICES_PATH = "/apis/resource.k8s.io/v1/resourceslices"


class SlicePublisher:
    def __init__(
        self,
        client: KubeClient,
        driver: str,
        node: str,
        node_uid: str | None,
        interval: float = 30.0,
    ) -> None:
        self._client = client
        self.driver = driver
        self.node = node
        self._owner = (
            [{"apiVersion": "v1", "kind": "Node", "name": node, "uid": node_uid}]
            if node_uid
            else []
        )
        self._interval = interval
        self._contents: list[dict[str, Any]] | None = None
        self._fallback: list[dict[str, Any]] | None = None
        self._counters_kept: bool | None = None  # what the API server did to a dry run
        self._generation = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.published = threading.Event()

    def publish(
        self, contents: list[dict[str, Any]], fallback: list[dict[str, Any]] | None = None
    ) -> None:
        """Set what the node offers, one entry of `contents` per slice (devices.chunked,
        partitions.contents); the thread writes it soon. `fallback` is offered instead when the
        API server drops shared counters (its DRAPartitionableDevices gate is off): published
        without their counters, core sets and whole devices would be allocated twice."""
        with self._lock:
            if (contents, fallback) != (self._contents, self._fallback):
                self._contents, self._fallback = contents, fallback
                self._generation += 1
        self._wake.set()

    def _keeps_counters(self, contents: list[dict[str, Any]], generation: int) -> bool:
        """Whether the API server stores shared counters, from a dry-run create of the first
        slice of `contents`; asked once."""
        if self._counters_kept is None:
            body = slices_of(self.node, self.driver, contents[:1], generation)[0]
            probe = {**body, "metadata": {"generateName": f"{body['metadata']['name']}-probe-"}}
            stored = self._client.request("POST", SLICES_PATH, {"dryRun": "All"}, probe)
            self._counters_kept = bool((stored.get("spec") or {}).get("sharedCounters"))
            if not self._counters_kept:
                log.error(
                    "the API server drops shared counters (feature gate DRAPartitionableDevices "
                    "off): publishing whole devices only, without core partitions",
                    node=self.node,
                )
        return self._counters_kept

    def _own(self) -> list[dict[str, Any]]:
        selector = f"spec.nodeName={self.node},spec.driver={self.driver}"
        doc = self._client.get(SLICES_PATH, {"fieldSelector": selector})
        return list(doc.get("items") or [])

    def sync(self) -> None:
        with self._lock:
            contents, fallback, generation = self._contents, self._fallback, self._generation
        if contents is None:
            return
        if fallback is not None and not self._keeps_counters(contents, generation):
            contents = fallback
        existing = {s["metadata"]["name"]: s for s in self._own()}
        wanted = slices_of(self.node, self.driver, contents, generation)
        names = {b["metadata"]["name"] for b in wanted}
        if set(existing) == names and not any(
            _differs(existing[b["metadata"]["name"]]["spec"], b["spec"]) for b in wanted
        ):
            self.published.set()
            return
        # The scheduler uses only a pool's slices of its highest generation: every slice is
        # rewritten with one newer than any it has seen, also after a restart of the driver.
        seen = max((s["spec"]["pool"].get("generation", 0) for s in existing.values()), default=0)
        if seen >= generation:
            with self._lock:
                self._generation = generation = max(self._generation, seen + 1)
            wanted = slices_of(self.node, self.driver, contents, generation)
        for body in wanted:
            name = body["metadata"]["name"]
            body["metadata"]["ownerReferences"] = self._owner
            old = existing.pop(name, None)
            if old is None:
                self._client.post(SLICES_PATH, body)
            else:
                body["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
                self._client.request("PUT", f"{SLICES_PATH}/{name}", body=body)
            log.info(
                "slice written",
                slice=name,
                generation=generation,
                devices=len(body["spec"]["devices"]),
            )
        for name in existing:
            self._client.request("DELETE", f"{SLICES_PATH}/{name}")
            log.info("slice deleted", slice=name)
        self.published.set()

    def remove_all(self) -> None:
        for s in self._own():
            try:
                self._client.request("DELETE", f"{SLICES_PATH}/{s['metadata']['name']}")
            except ApiError as err:
                if err.status != 404:
                    raise

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="slices", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.sync()
                backoff, wait = 1.0, self._interval
            except ApiError as err:
                log.warning("publishing slices failed, retrying", error=str(err), retry_in=backoff)
                wait, backoff = backoff, min(backoff * 2, 30.0)
            self._wake.wait(wait)


def _differs(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether a slice says something else than wanted, its pool's generation aside."""

    def strip(spec: dict[str, Any]) -> dict[str, Any]:
        pool = {k: v for k, v in (spec.get("pool") or {}).items() if k != "generation"}
        return {
            "driver": spec.get("driver"),
            "nodeName": spec.get("nodeName"),
            "pool": pool,
            "devices": spec.get("devices") or [],
            "sharedCounters": spec.get("sharedCounters") or [],
        }

    return strip(old) != strip(new)
