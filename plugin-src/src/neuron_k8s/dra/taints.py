"""Device taints for health (KEP-5055, resource.k8s.io/v1 `Device.taints`; beta and on in
Kubernetes 1.36, GA in 1.37): an unhealthy device stays published with a taint, so that the
scheduler gives it to no new claim (NoSchedule) or also evicts the pods using it (NoExecute,
when asked), and the taint goes when the device is healthy again. Pure: no I/O."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

UNHEALTHY_KEY = "neuron.aws.com/unhealthy"
EFFECTS = ("NoSchedule", "NoExecute")
DEFAULT_EFFECT = "NoSchedule"
MAX_LABEL_VALUE = 63


def label_value(text: str) -> str:
    """`text` made a valid label value (a taint's value must be one), or "true" when nothing
    of it is left."""
    value = re.sub(r"[^A-Za-z0-9._-]+", "_", text.strip())[:MAX_LABEL_VALUE]
    value = value.strip("._-")
    return value or "true"


def unhealthy_taint(reason: str = "", effect: str = DEFAULT_EFFECT) -> dict[str, Any]:
    if effect not in EFFECTS:
        raise ValueError(f"a taint effect must be one of {', '.join(EFFECTS)}, got {effect!r}")
    return {"key": UNHEALTHY_KEY, "value": label_value(reason), "effect": effect}


def tainted(
    device: dict[str, Any],
    devices: range | tuple[int, ...],
    unhealthy: Mapping[int, str],
    effect: str,
) -> dict[str, Any]:
    """`device` (which holds the node's devices `devices`) with the unhealthy taint when any of
    them is unhealthy, the reason being that of the first such device."""
    bad = [d for d in devices if d in unhealthy]
    if not bad:
        return device
    return {**device, "taints": [unhealthy_taint(unhealthy[bad[0]], effect)]}


def has_taints(contents: list[dict[str, Any]]) -> bool:
    return any(d.get("taints") for c in contents for d in c.get("devices") or [])
