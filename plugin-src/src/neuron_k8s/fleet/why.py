"""Why a Neuron pod waits: what the scheduler (and the extender, whose filter reasons it
reports) said, one sentence per group of nodes; the extender's verdict per Neuron node as it
would judge the pod now; what would fit, from the topology rules; or, for a pod a kubelet
refused, the refusal and its cause. Pure: no I/O."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from neuron_k8s.allocator import Request, mask
from neuron_k8s.extender.fit import evaluate
from neuron_k8s.pods import BadPod, container_requests
from neuron_k8s.topology import Shape

from .drawing import ranges
from .holdings import DRA, dig, items, meta
from .model import NodeView

AVAILABLE = "nodes are available: "
# The kubelet wraps a device plugin's or DRA driver's refusal in these words.
CAUSE = re.compile(r"desc = (?P<cause>.*?)(?:, which is unexpected)?$", re.DOTALL)


@dataclass
class Why:
    pod: str
    state: str  # pending, refused, bound, running, ...
    summary: str
    scheduler: list[str] = field(default_factory=list)  # "N <reason>", as the scheduler groups
    nodes: list[tuple[str, str]] = field(default_factory=list)  # (node, one sentence)
    fits: list[str] = field(default_factory=list)  # what would fit
    kubelet: str = ""  # a kubelet's refusal, as it wrote it

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["nodes"] = [{"node": n, "reason": r} for n, r in self.nodes]
        return doc

    def lines(self) -> list[str]:
        out = [f"{self.pod}: {self.summary}"]
        if self.kubelet:
            out += ["The kubelet says:", f"  {self.kubelet}"]
        if self.scheduler:
            out.append("The scheduler says (nodes per reason):")
            out += [f"  {s}" for s in self.scheduler]
        if self.nodes:
            out.append("Per Neuron node, as it stands now:")
            out += [f"  {n}: {r}" for n, r in self.nodes]
        if self.fits:
            out.append("What would fit:")
            out += [f"  {f}" for f in self.fits]
        return out


def scheduler_reasons(message: str) -> list[str]:
    """The groups of a FailedScheduling message ("0/5 nodes are available: 1 node(s) had
    untolerated taint(s), 4 <extender reason>. preemption: ..."), one string each. Groups
    are split at ", <count> ": extender reasons may hold commas, never one before a count."""
    body = message.split(" preemption:")[0]
    if AVAILABLE not in body:
        return [body.strip()] if body.strip() else []
    body = body.split(AVAILABLE, 1)[1].strip().removesuffix(".")
    return [part.strip() for part in re.split(r", (?=\d+ )", body) if part.strip()]


def _condition(pod: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    return next((c for c in items(dig(pod, "status", "conditions")) if c.get("type") == kind), {})


def _stamp(event: Mapping[str, Any]) -> str:
    return str(
        event.get("lastTimestamp")
        or event.get("eventTime")
        or meta(event).get("creationTimestamp")
        or ""
    )


def latest_event(events: Iterable[Mapping[str, Any]], reason: str) -> str:
    found = sorted((e for e in events if e.get("reason") == reason), key=_stamp)
    return str(found[-1].get("message", "")) if found else ""


def _selected(pod: Mapping[str, Any], view: NodeView) -> bool:
    """Whether the pod's nodeSelector (and nodeName) allow the node; affinity is not read."""
    selector = dig(pod, "spec", "nodeSelector")
    if isinstance(selector, Mapping) and any(
        str(view.labels.get(k)) != str(v) for k, v in selector.items()
    ):
        return False
    name = dig(pod, "spec", "nodeName")
    return not name or name == view.name


def allowed_sizes(shape: Shape) -> str:
    sizes = [str(s) for s in reversed(shape.device_sizes())]
    return ", ".join(sizes[:-1]) + f" or {sizes[-1]}" if len(sizes) > 1 else sizes[0]


def rule_advice(shape: Shape, request: Request) -> str | None:
    """What to ask for instead of a request the shape can never give, from its rules."""
    n = request.count
    if not request.resource.whole_devices:
        if shape.core_request_error(n) is None:
            return None
        return f"{shape.name} has {shape.cores} NeuronCores; ask for {shape.cores} or fewer"
    if shape.device_request_error(n) is None:
        return None
    sizes = shape.device_sizes()
    below = [s for s in sizes if s < n]
    above = [s for s in sizes if s > n]
    near = [str(s) for s in (max(below, default=0), min(above, default=0)) if s]
    return f"{shape.name} allows {allowed_sizes(shape)} devices; ask for {' or '.join(near)}"


def room_advice(views: Sequence[NodeView], request: Request) -> str:
    """For a request the rules allow but no node has room for now: the most a node could give."""
    whole = request.resource.whole_devices
    unit = "devices" if whole else "cores"
    best = max(
        (
            (v.room.largest_device_request if whole else v.room.largest_core_request, v.name)
            for v in views
            if v.room is not None
        ),
        default=(0, ""),
    )
    if not best[0]:
        return f"no node it may run on has a free set of {unit} now; wait for pods to finish"
    return (
        f"no node it may run on has {request.count} {unit} free together now; the most one "
        f"could give is {best[0]} {unit} ({best[1]}): ask for {best[0]} or wait"
    )


def explain(
    pod: Mapping[str, Any], views: Sequence[NodeView], events: Iterable[Mapping[str, Any]]
) -> Why:
    m = meta(pod)
    who = f"{m.get('namespace')}/{m.get('name')}"
    status = pod.get("status") or {}
    phase, node = str(status.get("phase", "")), str(dig(pod, "spec", "nodeName") or "")
    events = list(events)
    if status.get("reason") and phase == "Failed":
        return _refused(who, node, status)
    if phase != "Pending":
        return Why(who, phase.lower() or "unknown", f"{phase} on {node or 'no node'}, not waiting")
    if node:
        waiting = [
            f"{c.get('name')}: {dig(c, 'state', 'waiting', 'reason')}"
            for c in items(status.get("containerStatuses"))
            if dig(c, "state", "waiting", "reason")
        ]
        return Why(
            who,
            "bound",
            f"scheduled to {node}, waiting for its kubelet"
            + (f" ({'; '.join(waiting)})" if waiting else ""),
        )
    message = str(_condition(pod, "PodScheduled").get("message") or "")
    message = message or latest_event(events, "FailedScheduling")
    why = Why(who, "pending", "Pending, not scheduled", scheduler_reasons(message))
    try:
        requests = tuple(r.request for r in container_requests(pod))
    except BadPod as err:
        why.fits.append(f"the pod's requests cannot be served: {err}")
        return why
    mine = [v for v in views if _selected(pod, v)]
    if not requests:  # claims only: the DRA nodes are the ones that could serve them
        mine = [v for v in mine if v.path == DRA]
    for v in mine:
        why.nodes.append((v.name, _verdict(v, requests)))
    if not mine:
        why.fits.append("no Neuron node matches the pod's nodeSelector")
    _advise(why, mine, requests)
    return why


def _verdict(view: NodeView, requests: tuple[Request, ...]) -> str:
    room = view.room
    if view.shape is None or room is None:
        return "its devices are unknown"
    if not requests:
        return (
            f"DRA node: {room.largest_device_request} devices or {room.largest_core_request} "
            f"cores free together, {room.free_cores} cores free in all"
        )
    verdict = evaluate(view.shape, requests, view.held, mask(view.unhealthy))
    sentence = verdict.reason or "fits now"
    if view.path == DRA:
        sentence = f"DRA node (its DRA driver, not the extender, serves it): {sentence}"
    if view.unhealthy and verdict.reason:
        sentence += f" (unhealthy devices {ranges(view.unhealthy)})"
    return sentence


def _advise(why: Why, views: Sequence[NodeView], requests: tuple[Request, ...]) -> None:
    shapes = {v.shape.name: v.shape for v in views if v.shape is not None}
    for r in requests:
        advice = sorted({a for s in shapes.values() if (a := rule_advice(s, r))})
        why.fits += advice
        fits_somewhere = any(
            v.shape and evaluate(v.shape, (r,), v.held, mask(v.unhealthy)).reason is None
            for v in views
        )
        if not advice and views and not fits_somewhere:
            why.fits.append(room_advice(views, r))


def _refused(who: str, node: str, status: Mapping[str, Any]) -> Why:
    reason, message = str(status.get("reason")), str(status.get("message") or "")
    why = Why(who, "refused", f"refused by the kubelet on {node or '?'}: {reason}")
    why.kubelet = message
    found = CAUSE.search(message)
    if found:
        why.fits.append(f"cause: {found.group('cause').strip()}")
    return why
