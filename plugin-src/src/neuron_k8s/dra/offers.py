"""What the driver offers the API server for one state of the node's health: the slice contents
it would publish, best first, each next one needing less of the API (publisher.py takes the
first one the API server keeps). Pure: no I/O.

1. core partitions (partitions.py) with unhealthy devices tainted (taints.py);
2. core partitions, unhealthy devices unpublished (an API server that drops taints);
3. whole devices, unhealthy ones tainted (one that drops or refuses counters);
4. whole devices, unhealthy ones unpublished (one that keeps neither).
Without core partitions only 3 and 4; with every device healthy, the tainted and the untainted
offers are the same and only one of them is made.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from neuron_k8s.topology import Shape

from .devices import MAX_DEVICES_WITH_TAINTS, Versions, chunked, devices, tainted_devices
from .partitions import DEFAULT_CORE_SETS, contents
from .taints import DEFAULT_EFFECT

Contents = list[dict[str, Any]]


def offers(
    shape: Shape,
    node: str,
    versions: Versions,
    unhealthy: Mapping[int, str] | frozenset[int] = frozenset(),
    core_sets: str | tuple[int, ...] | None = None,
    effect: str = DEFAULT_EFFECT,
) -> list[Contents]:
    """The offers, best first. `core_sets`: the core-set sizes (partitions.CORE_SET_CHOICES)
    with core partitions, None without; `unhealthy` maps a device to its reason."""
    bad = unhealthy if isinstance(unhealthy, Mapping) else dict.fromkeys(unhealthy, "")
    out: list[Contents] = []
    if core_sets is not None:
        out.append(contents(shape, node, versions, bad, core_sets, effect))
        if bad:
            out.append(contents(shape, node, versions, bad, core_sets, None))
    if bad:
        whole = tainted_devices(shape, node, versions, bad, effect)
        out.append(chunked(whole, MAX_DEVICES_WITH_TAINTS))
    out.append(chunked(devices(shape, node, versions, frozenset(bad))))
    return out


__all__ = ["DEFAULT_CORE_SETS", "Contents", "offers"]
