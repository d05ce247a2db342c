"""The parts of resource.k8s.io/v1 that an API server may refuse or drop, and how the publisher
tells: shared counters (KEP-4815: gate DRAPartitionableDevices, and 1.34's API that wants
counters in the slice of the devices that consume them) and device taints (KEP-5055: gate
DRADeviceTaints). Pure: no I/O; the Event body for the Node is built here too."""

from __future__ import annotations

from typing import Any

from neuron_k8s.nodeevents import node_warning

COUNTERS = "counters"
TAINTS = "taints"

# What falling back means, for the log line and the Node's Event.
CONSEQUENCE = {
    COUNTERS: "publishing whole devices only, without core partitions",
    TAINTS: "unhealthy devices are unpublished instead of tainted",
}
REASON = {
    COUNTERS: "NeuronCorePartitionsUnavailable",
    TAINTS: "NeuronDeviceTaintsUnavailable",
}
WHAT = {
    COUNTERS: "shared counters (feature gate DRAPartitionableDevices, Kubernetes 1.35+ layout)",
    TAINTS: "device taints (feature gate DRADeviceTaints)",
}
COMPONENT = "neuron-dra-driver"
# A refusal of what was sent (validation, or a field this API version does not know); any
# other error (conflict, permission, unreachable) is retried as it is.
REFUSED = (400, 422)


def features(specs: list[dict[str, Any]]) -> frozenset[str]:
    """Which of the features slice contents (or slice specs) use."""
    found = set()
    for spec in specs:
        if spec.get("sharedCounters"):
            found.add(COUNTERS)
        for d in spec.get("devices") or []:
            if d.get("consumesCounters"):
                found.add(COUNTERS)
            if d.get("taints"):
                found.add(TAINTS)
    return frozenset(found)


def dropped(sent: dict[str, Any], stored: dict[str, Any]) -> frozenset[str]:
    """The features of a sent slice spec that the stored one lacks."""
    return features([sent]) - features([stored])


def _without(spec: dict[str, Any], field: str) -> dict[str, Any]:
    devices = [{k: v for k, v in d.items() if k != field} for d in spec.get("devices") or []]
    return {**spec, "devices": devices}


def probe_contents(feature: str, contents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The slice contents whose dry-run create shows whether the API server keeps `feature`:
    for counters the first counter slice and the first device slice consuming counters (its
    taints taken off), for taints the first slice with a tainted device (its counters taken
    off), so that each probe tells about one feature only."""
    if feature == COUNTERS:
        counters = [c for c in contents if c.get("sharedCounters")][:1]
        consuming = [
            _without(c, "taints")
            for c in contents
            if any(d.get("consumesCounters") for d in c.get("devices") or [])
        ][:1]
        return counters + consuming
    return [
        _without(c, "consumesCounters")
        for c in contents
        if any(d.get("taints") for d in c.get("devices") or [])
    ][:1]


def node_event(
    node: str, uid: str | None, feature: str, cause: str, now_ns: int | None = None
) -> dict[str, Any]:
    """A core/v1 Warning Event on the Node saying what the driver publishes instead."""
    message = f"The API server does not keep {WHAT[feature]}: {CONSEQUENCE[feature]}. ({cause})"
    return node_warning(node, uid, REASON[feature], message, COMPONENT, now_ns)
