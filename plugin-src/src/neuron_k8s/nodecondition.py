"""What the Node says about Neuron hardware errors (hardwareerrors.py): the condition
`NeuronHealth` (the type AWS's node-problem-detector rules set), written by a background thread,
and one Warning Event `NeuronHardwareError` per newly recorded device. Used by the device plugin
and the DRA driver from their health callbacks, never inside a kubelet call.
docs/architecture.md, "Hardware errors".

The condition is patched on `nodes/<name>/status` (strategic merge on `status.conditions`,
merge key `type`): True, reason `NeuronHardwareError`, while any device has an error; else
False, reason `NeuronHasNoError`, written only where the condition is absent or not already
False, so that a healthy node costs one GET at start. `lastTransitionTime` moves only when the
status does. API errors are retried with capped backoff; the latest wanted value wins.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from neuron_k8s.hardwareerrors import Fault, Key
from neuron_k8s.kube import ApiError, KubeClient
from neuron_k8s.logs import get_logger
from neuron_k8s.nodeevents import node_warning, post_in_background

log = get_logger("nodecondition")

CONDITION = "NeuronHealth"
HARDWARE_ERROR = "NeuronHardwareError"  # the condition's reason and the Event's
NO_ERROR = "NeuronHasNoError"
STRATEGIC_MERGE = "application/strategic-merge-patch+json"
DOCS = "docs/architecture.md, Hardware errors"

# (status, reason, message) of the condition
Wanted = tuple[str, str, str]


def condition_message(errors: Mapping[int, str]) -> str:
    if not errors:
        return "No Neuron hardware error reported in kernel messages this boot."
    by_kind: dict[str, list[int]] = {}
    for device, kind in sorted(errors.items()):
        by_kind.setdefault(kind, []).append(device)
    parts = [
        f"{kind} on device{'s' if len(devices) > 1 else ''} {', '.join(map(str, devices))}"
        for kind, devices in sorted(by_kind.items())
    ]
    return (
        f"Neuron hardware errors (NEURON_HW_ERR) in kernel messages: {'; '.join(parts)}. "
        f"These devices are unhealthy until the node reboots ({DOCS})."
    )[:1024]


def wanted_condition(errors: Mapping[int, str]) -> Wanted:
    status, reason = ("True", HARDWARE_ERROR) if errors else ("False", NO_ERROR)
    return status, reason, condition_message(errors)


def hardware_error_event(
    node: str, uid: str | None, device: Key, fault: Fault, component: str
) -> dict[str, Any]:
    """The Warning Event for one newly recorded device (None: the whole node)."""
    which = "every Neuron device of this node" if device is None else f"Neuron device {device}"
    message = (
        f"{fault.kind} (NEURON_HW_ERR) in kernel messages: {which} is unhealthy until the node "
        f"reboots ({DOCS}). Message: {fault.message}"
    )
    return node_warning(node, uid, HARDWARE_ERROR, message, component)


def _timestamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition_patch(wanted: Wanted, now: float, transition: bool) -> dict[str, Any]:
    """The strategic merge patch of nodes/<name>/status setting the condition. Without
    `transition` the patch leaves lastTransitionTime as it is."""
    status, reason, message = wanted
    condition = {
        "type": CONDITION,
        "status": status,
        "reason": reason,
        "message": message,
        "lastHeartbeatTime": _timestamp(now),
    }
    if transition:
        condition["lastTransitionTime"] = _timestamp(now)
    return {"status": {"conditions": [condition]}}


def current_condition(node: Mapping[str, Any]) -> Wanted | None:
    """The condition as the Node holds it, None when absent."""
    for c in (node.get("status") or {}).get("conditions") or []:
        if isinstance(c, dict) and c.get("type") == CONDITION:
            return str(c.get("status", "")), str(c.get("reason", "")), str(c.get("message", ""))
    return None


class NodeConditionWriter:
    """Keeps the Node's NeuronHealth condition as set() last asked, from its own thread."""

    def __init__(
        self,
        client: KubeClient,
        node: str,
        retry: float = 1.0,
        max_retry: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._node = node
        self._retry = retry
        self._max_retry = max_retry
        self._clock = clock
        self._wanted: Wanted | None = None
        self._written: Wanted | None = None  # what the Node holds, as far as known
        self._known = False  # the Node's condition has been read
        self._wake = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="node-condition", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify_all()

    def set(self, errors: Mapping[int, str]) -> None:
        """Never blocks, never raises: the health thread calls it."""
        with self._wake:
            self._wanted = wanted_condition(errors)
            self._wake.notify_all()

    def _pending(self) -> bool:
        return self._wanted is not None and (not self._known or self._wanted != self._written)

    def _run(self) -> None:
        delay = self._retry
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._stopped or self._pending())
                if self._stopped:
                    return
                wanted = self._wanted
            if wanted is None:
                continue
            try:
                self.write_once(wanted)
                delay = self._retry
            except ApiError as err:
                log.warning(
                    "node condition not written, will retry",
                    node=self._node,
                    condition=CONDITION,
                    error=str(err),
                    retry_in=delay,
                )
                with self._wake:
                    self._wake.wait(delay)
                delay = min(delay * 2, self._max_retry)
            except Exception as err:  # a bug must not end the writer silently
                log.error("node condition writer failed", error=str(err), exc_info=True)
                with self._wake:
                    self._wake.wait(delay)
                delay = min(delay * 2, self._max_retry)

    def write_once(self, wanted: Wanted) -> None:
        """Bring the Node's condition to `wanted` (raises ApiError)."""
        if not self._known:
            self._written = current_condition(self._client.get(f"/api/v1/nodes/{self._node}"))
            self._known = True
        held = self._written
        if held == wanted or (held is not None and held[0] == wanted[0] == "False"):
            self._written = wanted  # as wanted, or already False: keep writes rare
            return
        transition = held is None or held[0] != wanted[0]
        self._client.request(
            "PATCH",
            f"/api/v1/nodes/{self._node}/status",
            body=condition_patch(wanted, self._clock(), transition),
            content_type=STRATEGIC_MERGE,
        )
        self._written = wanted
        log.info(
            "node condition written",
            node=self._node,
            condition=CONDITION,
            status=wanted[0],
            reason=wanted[1],
            message=wanted[2],
        )


def event_poster(
    client: KubeClient | None, node: str | None, uid: str | None, component: str
) -> Callable[[Key, Fault], None] | None:
    """hardwareerrors' on_new: the Warning Event for each newly recorded device, posted from
    its own thread; None without the API or the node's name."""
    if client is None or not node:
        return None

    def post(device: Key, fault: Fault) -> None:
        post_in_background(client, hardware_error_event(node, uid, device, fault, component))

    return post
