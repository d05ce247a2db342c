"""Warning Events on pods whose record the extender ignores (extender/podrecords.py), posted
from a thread of their own: the watch thread only queues, and drops what does not fit."""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from datetime import UTC, datetime

from ..kube import ApiError, KubeClient
from ..logs import get_logger
from .podrecords import Rejected

log = get_logger("extender.events")

COMPONENT = "neuron-scheduler-extender"
REASON = "NeuronRecordRejected"


class RecordEvents:
    def __init__(self, client: KubeClient, size: int = 256) -> None:
        self._client = client
        self._queue: queue.Queue[Rejected | None] = queue.Queue(size)
        self._thread: threading.Thread | None = None
        self.dropped = 0  # reports the queue had no room for
        self._forbidden = False

    def report(self, r: Rejected) -> None:
        """Queue an Event; never blocks (it runs on the watch thread, under the state's lock)."""
        if not r.namespace or not r.name or self._forbidden:
            return
        try:
            self._queue.put_nowait(r)
        except queue.Full:
            self.dropped += 1

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="record-events", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        # Unblock the thread; whatever is still queued is dropped.
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)

    def _run(self) -> None:
        while (r := self._queue.get()) is not None:
            try:
                self._client.post(f"/api/v1/namespaces/{r.namespace}/events", event_of(r))
            except ApiError as err:
                if err.status == 403:
                    # The logs and neuron_extender_unusable_records_total still say it.
                    log.warning("no permission to create events; reporting in logs only")
                    self._forbidden = True
                else:
                    pod = f"{r.namespace}/{r.name}"
                    log.warning("posting an event failed", pod=pod, error=str(err))


def event_of(r: Rejected, now_ns: int | None = None) -> dict[str, object]:
    """A core/v1 Event on the pod, named as client-go's recorder names them."""
    ns = time.time_ns() if now_ns is None else now_ns
    when = datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{r.name}.{ns:x}", "namespace": r.namespace},
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "Pod",
            "namespace": r.namespace,
            "name": r.name,
            "uid": r.uid,
        },
        "type": "Warning",
        "reason": REASON,
        "message": f"The Neuron scheduler extender ignores this pod's record ({r.reason}): "
        f"{r.message}"[:1024],
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "firstTimestamp": when,
        "lastTimestamp": when,
        "count": 1,
    }
