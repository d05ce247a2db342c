"""The Neuron pods: one row per container set (or per asking container while nothing is held
yet), with its node, cores, devices, path and age. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from neuron_k8s.pods import BadPod, container_requests

from .drawing import ranges
from .holdings import DEVICE_PLUGIN, DRA, Holding, Unreadable, dig, items, meta
from .model import NodeView

HEADER = (
    *("NAMESPACE", "NAME", "STATUS", "NODE", "CONTAINER"),
    *("ASKS", "CORES", "DEVICES", "PATH", "AGE"),
)


@dataclass(frozen=True)
class PodRow:
    namespace: str
    name: str
    status: str
    node: str
    container: str
    asks: str  # the resource and count, or the DRA devices given
    cores: tuple[int, ...]
    devices: tuple[int, ...]
    path: str
    age_seconds: int | None
    problem: str = ""  # why the pod's record cannot be read

    def cells(self) -> tuple[str, ...]:
        held = bool(self.cores)
        return (
            self.namespace,
            self.name,
            self.status,
            self.node or "-",
            self.container or "-",
            self.asks or "-",
            ranges(self.cores) if held else ("unreadable" if self.problem else "-"),
            ranges(self.devices) if held else "-",
            self.path,
            age(self.age_seconds),
        )

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["cores"], doc["devices"] = list(self.cores), list(self.devices)
        return doc


def age(seconds: int | None) -> str:
    """A short age as kubectl's: 42s, 5m, 3h, 12d (the larger unit from two of them)."""
    if seconds is None:
        return "<unknown>"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= 2 * size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def asks(h: Holding) -> str:
    """What a set was asked as: "2 aws.amazon.com/neuroncore", or the DRA devices given."""
    if h.claim:
        return h.what
    count = len(h.devices) if h.what != "aws.amazon.com/neuroncore" else len(h.cores)
    return f"{count} {h.what}"


def seconds_since(stamp: Any, now: datetime) -> int | None:
    try:
        when = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
        return int((now - when).total_seconds())
    except (TypeError, ValueError):
        return None


def status_of(pod: Mapping[str, Any]) -> str:
    """As kubectl shows it: the status reason when there is one (a kubelet's refusal), else
    the phase, Pending pods the scheduler turned away shown as Unschedulable."""
    status = pod.get("status") or {}
    if status.get("reason"):
        return str(status["reason"])
    phase = str(status.get("phase") or "Unknown")
    if phase == "Pending" and not dig(pod, "spec", "nodeName"):
        for c in items(status.get("conditions")):
            if c.get("type") == "PodScheduled" and c.get("reason") == "Unschedulable":
                return "Unschedulable"
    return phase


def neuron_claims(claims: Iterable[Mapping[str, Any]], driver: str) -> set[tuple[str, str]]:
    """(namespace, name) of the claims for Neuron devices: allocated by our driver, or asking
    a device class whose name says Neuron (the chart's classes all do)."""
    out = set()
    for c in claims:
        results = items(dig(c, "status", "allocation", "devices", "results"))
        asked = items(dig(c, "spec", "devices", "requests"))
        classes = [str(dig(r, "exactly", "deviceClassName") or "") for r in asked]
        classes += [
            str(s.get("deviceClassName") or "")
            for r in asked
            for s in items(dig(r, "firstAvailable"))
        ]
        if any(r.get("driver") == driver for r in results) or any("neuron" in k for k in classes):
            out.add((str(meta(c).get("namespace", "")), str(meta(c).get("name", ""))))
    return out


def pod_claims(pod: Mapping[str, Any]) -> set[str]:
    status = pod.get("status") or {}
    names = {str(s.get("resourceClaimName")) for s in items(status.get("resourceClaimStatuses"))}
    extended = status.get("extendedResourceClaimStatus")
    if isinstance(extended, Mapping) and extended.get("resourceClaimName"):
        names.add(str(extended["resourceClaimName"]))
    return names


def pod_rows(
    pods: Iterable[Mapping[str, Any]],
    views: Sequence[NodeView],
    claims: Iterable[Mapping[str, Any]],
    driver: str,
    now: datetime,
) -> list[PodRow]:
    """A row per Neuron container set of each pod in `pods` (sorted by namespace and name)."""
    held: dict[tuple[str, str], list[Holding]] = {}
    bad: dict[tuple[str, str], Unreadable] = {}
    paths = {v.name: v.path for v in views}
    for v in views:
        for h in v.holdings:
            held.setdefault((h.namespace, h.pod), []).append(h)
        for u in v.unreadable:
            bad[(u.namespace, u.name)] = u
    ours = neuron_claims(claims, driver)
    rows = []
    for pod in pods:
        m = meta(pod)
        key = (str(m.get("namespace", "")), str(m.get("name", "")))
        node = str(dig(pod, "spec", "nodeName") or "")
        try:
            asked = container_requests(pod)
            problem = ""
        except BadPod as err:
            asked, problem = [], str(err)
        with_claims = any((key[0], c) in ours for c in pod_claims(pod))
        if not (asked or with_claims or key in held or key in bad):
            continue
        if key in bad:
            problem = bad[key].reason
        path = paths.get(node) or (DRA if with_claims else DEVICE_PLUGIN)
        common = (key[0], key[1], status_of(pod), node)
        since = seconds_since(m.get("creationTimestamp"), now)
        if key in held:
            for h in held[key]:  # in the order of the pod's containers
                rows.append(PodRow(*common, h.container, asks(h), h.cores, h.devices, path, since))
            continue
        wanted = [(r.container, f"{r.request.count} {r.request.resource.value}") for r in asked]
        for name, what in wanted or [("", "claim")]:
            rows.append(PodRow(*common, name, what, (), (), path, since, problem))
    return sorted(rows, key=lambda r: (r.namespace, r.name))  # stable: containers in order
