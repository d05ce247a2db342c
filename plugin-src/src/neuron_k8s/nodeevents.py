"""The Warning Event on the Node that real discovery's callers post when the node has no Neuron
driver (hostdevices.py): so that `kubectl describe node` says why it advertises nothing."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

from neuron_k8s.kube import ApiError, KubeClient
from neuron_k8s.logs import get_logger

log = get_logger("nodeevents")

EVENTS_PATH = "/api/v1/namespaces/default/events"
DRIVER_NOT_FOUND = "NeuronDriverNotFound"


def driver_not_found_message(dev_root: str, sysfs_root: str) -> str:
    return (
        f"No Neuron driver on this node: no neuronN device node under {dev_root} and no "
        f"neuron_device entry under {sysfs_root}. No Neuron devices are advertised until the "
        "driver's device nodes appear."
    )


def node_warning(
    node: str,
    uid: str | None,
    reason: str,
    message: str,
    component: str,
    now_ns: int | None = None,
) -> dict[str, Any]:
    """A core/v1 Warning Event on the Node, naming its UID when given. The kubelet gives the
    node's name as its UID; `kubectl describe node` finds both."""
    ns = time.time_ns() if now_ns is None else now_ns
    when = datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    involved: dict[str, Any] = {"apiVersion": "v1", "kind": "Node", "name": node}
    if uid:
        involved["uid"] = uid
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{node}.{ns:x}", "namespace": "default"},
        "involvedObject": involved,
        "type": "Warning",
        "reason": reason,
        "message": message[:1024],
        "source": {"component": component, "host": node},
        "reportingComponent": component,
        "reportingInstance": node,
        "firstTimestamp": when,
        "lastTimestamp": when,
        "count": 1,
    }


def post_in_background(client: KubeClient, event: dict[str, Any]) -> threading.Thread:
    """Post the Event from its own thread: the caller (a health poll) never waits on the API.
    A failure is logged, not retried: the log line says the same."""

    def post() -> None:
        try:
            client.post(EVENTS_PATH, event)
        except ApiError as err:
            log.warning(
                "posting an event on the node failed",
                reason=event.get("reason"),
                node=event["involvedObject"]["name"],
                error=str(err),
            )

    thread = threading.Thread(target=post, name="node-event", daemon=True)
    thread.start()
    return thread
