"""Keeps this node's ResourceSlices equal to what the driver publishes: creates, replaces and
deletes its own slices (one pool named after the node), again after every change of the
devices' health and every `interval` seconds, because the kubelet deletes a node's slices when
it starts. Runs in its own thread; API errors are retried with capped backoff.

What the API server refuses (400, 422) or drops, in a dry run or a real write, is not retried:
the publisher falls back to the next offer (offers.py) that does without it, says so once in
its log and once in an Event on the Node, and never leaves the node with nothing published."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from neuron_k8s.kube import ApiError, KubeClient
from neuron_k8s.logs import get_logger
from neuron_k8s.nodeevents import EVENTS_PATH

from .apifeatures import (
    CONSEQUENCE,
    REFUSED,
    WHAT,
    dropped,
    features,
    node_event,
    probe_contents,
)
from .devices import slices_of

log = get_logger("dra.publisher")
SLICES_PATH = "/apis/resource.k8s.io/v1/resourceslices"


class _Refused(Exception):
    """A write of slices using `lost` was refused, or stored without them."""

    def __init__(self, lost: frozenset[str], cause: str) -> None:
        super().__init__(cause)
        self.lost = lost
        self.cause = cause


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
        self._node_uid = node_uid
        self._owner = (
            [{"apiVersion": "v1", "kind": "Node", "name": node, "uid": node_uid}]
            if node_uid
            else []
        )
        self._interval = interval
        self._offers: tuple[list[dict[str, Any]], ...] | None = None
        # Whether the API server keeps each feature (apifeatures.py), asked once each.
        self.kept: dict[str, bool] = {}
        self._generation = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.published = threading.Event()

    def publish(self, contents: list[dict[str, Any]], *fallbacks: list[dict[str, Any]]) -> None:
        """Set what the node offers, one entry of `contents` per slice (offers.py); the thread
        writes it soon. Each of `fallbacks` is offered instead, in turn, while the API server
        refuses or drops a feature (shared counters, device taints) the ones before use:
        published without their counters, core sets and whole devices would be allocated
        twice, and without their taints unhealthy devices would look healthy."""
        offers = (contents, *fallbacks)
        with self._lock:
            if offers != self._offers:
                self._offers = offers
                self._generation += 1
        self._wake.set()

    def _lose(self, feature: str, cause: str) -> None:
        """Note that the API server does not keep `feature`: one log line and one Event on
        the Node, for the life of the publisher."""
        if self.kept.get(feature) is False:
            return
        self.kept[feature] = False
        log.error(
            f"the API server does not keep {WHAT[feature]}: {CONSEQUENCE[feature]}",
            node=self.node,
            cause=cause,
        )
        try:
            event = node_event(self.node, self._node_uid, feature, cause)
            self._client.post(EVENTS_PATH, event)
        except ApiError as err:
            log.warning("posting an event on the node failed", node=self.node, error=str(err))

    def _keeps(self, feature: str, contents: list[dict[str, Any]], generation: int) -> bool:
        """Whether the API server keeps `feature`, from dry-run creates of slices that use it
        (apifeatures.probe_contents); asked once. Errors other than a refusal are raised."""
        if feature not in self.kept:
            probes = slices_of(
                self.node, self.driver, probe_contents(feature, contents), generation
            )
            for body in probes:
                name = body["metadata"]["name"]
                probe = {**body, "metadata": {"generateName": f"{name}-probe-"}}
                try:
                    stored = self._client.request("POST", SLICES_PATH, {"dryRun": "All"}, probe)
                except ApiError as err:
                    if err.status not in REFUSED:
                        raise
                    self._lose(feature, f"a dry run was refused: {err}"[:600])
                    return False
                if feature in dropped(body["spec"], stored.get("spec") or {}):
                    self._lose(feature, "a dry run came back without them")
                    return False
            self.kept[feature] = True
        return self.kept[feature]

    def _blame(self, refused: _Refused, contents: list[dict[str, Any]], generation: int) -> None:
        """Note which features a refused write lost: one is lost; of several, those that a
        dry run of each alone now shows lost, or all of them when none does."""
        if len(refused.lost) > 1:
            for f in refused.lost:
                self.kept.pop(f, None)
            if not all([self._keeps(f, contents, generation) for f in sorted(refused.lost)]):
                return
        for f in sorted(refused.lost):
            self._lose(f, refused.cause)

    def _own(self) -> list[dict[str, Any]]:
        selector = f"spec.nodeName={self.node},spec.driver={self.driver}"
        doc = self._client.get(SLICES_PATH, {"fieldSelector": selector})
        return list(doc.get("items") or [])

    def sync(self) -> None:
        with self._lock:
            offers, generation = self._offers, self._generation
        if offers is None:
            return
        for contents in offers:
            needs = features(contents)
            if not all(self._keeps(f, contents, generation) for f in sorted(needs)):
                continue
            try:
                self._write(contents, generation)
                return
            except _Refused as refused:
                if not refused.lost:
                    raise ApiError(422, "Invalid", refused.cause) from None
                self._blame(refused, contents, generation)
        log.error("the API server keeps none of the slices offered", node=self.node)

    def _write(self, contents: list[dict[str, Any]], generation: int) -> None:
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
        _keep_taint_times(wanted, existing.values())
        for body in wanted:
            name = body["metadata"]["name"]
            body["metadata"]["ownerReferences"] = self._owner
            old = existing.pop(name, None)
            try:
                if old is None:
                    stored = self._client.post(SLICES_PATH, body)
                else:
                    body["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
                    stored = self._client.request("PUT", f"{SLICES_PATH}/{name}", body=body)
            except ApiError as err:
                if err.status in REFUSED:
                    raise _Refused(features([body["spec"]]), f"{name}: {err}"[:600]) from None
                raise
            lost = dropped(body["spec"], stored.get("spec") or {})
            if lost:
                raise _Refused(lost, f"{name} was stored without them")
            log.info(
                "slice written",
                slice=name,
                generation=generation,
                devices=len(body["spec"].get("devices") or []),
                counter_sets=len(body["spec"].get("sharedCounters") or []),
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


def _untimed(devices: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Devices with their taints' `timeAdded` left out: the API server sets it."""
    out = []
    for d in devices:
        if d.get("taints"):
            taints = [{k: v for k, v in t.items() if k != "timeAdded"} for t in d["taints"]]
            d = {**d, "taints": taints}
        out.append(d)
    return out


def _differs(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether a slice says something else than wanted, its pool's generation aside."""

    def strip(spec: dict[str, Any]) -> dict[str, Any]:
        pool = {k: v for k, v in (spec.get("pool") or {}).items() if k != "generation"}
        return {
            "driver": spec.get("driver"),
            "nodeName": spec.get("nodeName"),
            "pool": pool,
            "devices": _untimed(spec.get("devices") or []),
            "sharedCounters": spec.get("sharedCounters") or [],
        }

    return strip(old) != strip(new)


def _keep_taint_times(wanted: list[dict[str, Any]], existing: Iterable[dict[str, Any]]) -> None:
    """Give each wanted taint the `timeAdded` its device already has for it, wherever the
    device sits now: a taint that stays is not a new one (the time NoExecute counts from)."""
    times: dict[tuple[Any, ...], dict[str, Any]] = {}
    for s in existing:
        for d in s["spec"].get("devices") or []:
            for t in d.get("taints") or []:
                if t.get("timeAdded"):
                    times[(d["name"], t.get("key"), t.get("value"), t.get("effect"))] = t
    for body in wanted:
        devices = body["spec"].get("devices") or []
        if any(d.get("taints") for d in devices):
            body["spec"]["devices"] = [_timed(d, times) for d in devices]


def _timed(device: dict[str, Any], times: dict[tuple[Any, ...], dict[str, Any]]) -> dict[str, Any]:
    if not device.get("taints"):
        return device
    taints = []
    for t in device["taints"]:
        old = times.get((device["name"], t.get("key"), t.get("value"), t.get("effect")))
        taints.append({**t, "timeAdded": old["timeAdded"]} if old and "timeAdded" not in t else t)
    return {**device, "taints": taints}
