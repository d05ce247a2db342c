"""Telling kube-scheduler that room appeared, once the extender's own view has it.

kube-scheduler retries a pod the extender turned away on the next cluster event, such as the
deletion of a pod that held cores. Its informer and the extender's watch see that deletion at
about the same moment, so the retry can reach filter before the extender's view has the cores
free: the pod is turned away again, and with no further event it waits for kube-scheduler's
periodic flush (5 minutes). So whenever a node gains room after the extender has turned a pod
away for lack of it, the extender merge-patches one annotation of its own pod, a pod event
that makes kube-scheduler retry those pods against the view that has the room. Patches are
coalesced: at most one per `interval`."""

from __future__ import annotations

import threading
import time

from ..kube import ApiError, KubeClient
from ..logs import get_logger

log = get_logger("extender.requeue")

ANNOTATION = "neuron.k8s.local/room-seen"


class Requeuer:
    def __init__(self, client: KubeClient, namespace: str, pod: str, interval: float = 0.2) -> None:
        self._client = client
        self._path = f"/api/v1/namespaces/{namespace}/pods/{pod}"
        self._interval = interval
        self._cond = threading.Condition()
        self._turned_away = False  # a pod was turned away since the last patch
        self._room = False  # room appeared since then
        self._stopped = False
        self._sent = 0
        self._thread = threading.Thread(target=self._run, name="requeue", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def turned_away(self) -> None:
        """filter found no node with room for a pod: only room that appears from now on can
        change that."""
        with self._cond:
            self._turned_away = True
            self._room = False

    def room(self) -> None:
        """A node gained room (called under the state's lock: only a flag is set)."""
        with self._cond:
            self._room = True
            if self._turned_away:
                self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._stopped or (self._room and self._turned_away))
                if self._stopped:
                    return
                self._room = self._turned_away = False
            self._sent += 1
            body = {"metadata": {"annotations": {ANNOTATION: f"{time.time():.3f}"}}}
            try:
                self._client.merge_patch(self._path, body)
            except ApiError as err:
                log.warning("could not tell kube-scheduler that room appeared", error=str(err))
            time.sleep(self._interval)
