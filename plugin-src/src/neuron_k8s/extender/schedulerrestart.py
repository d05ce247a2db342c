"""Rolling my-scheduler when the CA of its extender certificate changes.

kube-scheduler re-reads its extender client certificate and key at each new handshake, but
loads the CA that verifies the extender once, at start (client-go transport, rootCertPool).
The extender re-reads its own files (tls.py). So a leaf renewed under the same CA needs
nothing, but a new CA makes every call of my-scheduler fail verification until it restarts:
every Neuron pod Pending. When the CA the extender trusts (its client-CA file, the same CA in
the chart's modes) changes, the extender sets one annotation of my-scheduler's pod template
(`ANNOTATION`: the first 16 hex digits of the CA's sha256), a rollout that starts my-scheduler
with the new CA. At start it compares the annotation, if set, with its CA: a CA that changed
while the extender was down. An absent annotation is left alone: nothing says which CA the
scheduler started with, and a fresh install has them in step.

Everything runs on a thread of its own, with retries and backoff; the TLS reload only sets a
flag (it runs on a connection's thread)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from typing import Any

from ..kube import ApiError, KubeClient
from ..logs import get_logger

log = get_logger("extender.schedulerrestart")

ANNOTATION = "neuron.k8s.local/extender-ca"
STRATEGIC_MERGE = "application/strategic-merge-patch+json"


def ca_hash(pem: bytes) -> str:
    """The sha256 (hex) of a CA file's bytes."""
    return hashlib.sha256(pem).hexdigest()


def short(digest: str) -> str:
    """The annotation's value for a CA hash."""
    return digest[:16]


class SchedulerRestarter:
    """`ca_changed` (ServerTls's callback) asks for a patch; `start` checks the annotation once
    and then patches on each change. `poll` (the TLS provider) is called every `poll_every`,
    so that a new CA is noticed without waiting for a connection to the verbs. `outcome`
    counts patch attempts ("patched", "failed") for the metrics."""

    def __init__(
        self,
        client: KubeClient,
        namespace: str,
        deployment: str,
        *,
        poll_every: float = 10.0,
        backoff: tuple[float, float] = (1.0, 60.0),
    ) -> None:
        self._client = client
        self._path = f"/apis/apps/v1/namespaces/{namespace}/deployments/{deployment}"
        self._deployment = deployment
        self._poll: Callable[[], object] | None = None
        self._poll_every = poll_every
        self._backoff = backoff
        self._outcome: Callable[[str], None] | None = None
        self._cond = threading.Condition()
        self._current = ""  # short hash of the CA the extender trusts now
        self._wanted: str | None = None  # short hash to write, when a patch is due
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="scheduler-restart", daemon=True)

    def start(
        self,
        current: str,
        *,
        poll: Callable[[], object] | None = None,
        outcome: Callable[[str], None] | None = None,
    ) -> None:
        """Start with the hash of the CA the extender loaded."""
        self._current = short(current)
        self._poll, self._outcome = poll, outcome
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def ca_changed(self, digest: str) -> None:
        """The extender reloaded a client CA with this hash: roll my-scheduler (flag only)."""
        with self._cond:
            self._current = self._wanted = short(digest)
            self._cond.notify_all()

    def _run(self) -> None:
        try:
            self._check_at_start()
            while True:
                with self._cond:
                    self._cond.wait_for(
                        lambda: self._stopped or self._wanted is not None, self._poll_every
                    )
                    if self._stopped:
                        return
                    wanted = self._wanted
                if wanted is None:
                    self._poll_files()
                else:
                    self._patch(wanted)
        except Exception as err:  # a bug here must not take the extender down
            log.error("scheduler restarter stopped", exc_info=True, error=str(err))

    def _poll_files(self) -> None:
        if self._poll is None:
            return
        try:
            self._poll()
        except Exception as err:  # the provider keeps its last context; only log
            log.warning("TLS files not checked", error=str(err))

    def _sleep(self, seconds: float) -> bool:
        """Wait unless stopped; True when stopped."""
        with self._cond:
            return self._cond.wait_for(lambda: self._stopped, seconds)

    def _check_at_start(self) -> None:
        delay = self._backoff[0]
        while True:
            with self._cond:
                if self._stopped or self._wanted is not None:
                    return  # a change since start: its patch covers this
                current = self._current
            try:
                deployment = self._client.get(self._path)
                break
            except ApiError as err:
                log.warning(
                    "cannot read the scheduler Deployment, retrying",
                    deployment=self._deployment,
                    error=str(err),
                    retry_in=delay,
                )
            if self._sleep(delay):
                return
            delay = min(delay * 2, self._backoff[1])
        template = deployment.get("spec", {}).get("template", {})
        annotations: dict[str, Any] = template.get("metadata", {}).get("annotations") or {}
        seen = annotations.get(ANNOTATION)
        if seen is None or seen == current:
            # Absent: a fresh install, or a scheduler this extender never rolled.
            log.info("scheduler CA in step", deployment=self._deployment, ca=current, seen=seen)
            return
        log.info(
            "scheduler Deployment has another CA than the extender",
            deployment=self._deployment,
            scheduler_ca=seen,
            ca=current,
        )
        with self._cond:
            if self._wanted is None:
                self._wanted = current
            self._cond.notify_all()

    def _patch(self, wanted: str) -> None:
        """Patch until it lands, the wanted hash changes (the next round writes that) or stop."""
        delay = self._backoff[0]
        body = {"spec": {"template": {"metadata": {"annotations": {ANNOTATION: wanted}}}}}
        while True:
            try:
                self._client.request("PATCH", self._path, body=body, content_type=STRATEGIC_MERGE)
            except ApiError as err:
                self._count("failed")
                log.warning(
                    "cannot roll the scheduler for the new CA, retrying",
                    deployment=self._deployment,
                    ca=wanted,
                    error=str(err),
                    retry_in=delay,
                )
                if self._sleep(delay):
                    return
                delay = min(delay * 2, self._backoff[1])
                with self._cond:
                    if self._wanted != wanted:
                        return
                continue
            self._count("patched")
            log.info("scheduler rolled for the new CA", deployment=self._deployment, ca=wanted)
            with self._cond:
                if self._wanted == wanted:
                    self._wanted = None
            return

    def _count(self, outcome: str) -> None:
        if self._outcome is not None:
            self._outcome(outcome)
