"""The soak's options: each flag also read from an environment variable NEURON_SOAK_<FLAG>."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "NEURON_SOAK_"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="soak.py",
        description="Churn on the kind cluster of cluster/harness.py with a fault every minute; "
        "prints what it saw and exits non-zero on any double-given core, any container whose "
        "cores differ from PodResources or its claim, any pod a kubelet refused, or capacity "
        "that did not come back. Every flag can also be given as NEURON_SOAK_<FLAG> "
        "(e.g. NEURON_SOAK_MINUTES=5).",
    )
    add = p.add_argument
    add("--minutes", type=float, default=10.0, help="how long to churn (default 10)")
    add(
        "--kubeconfig",
        default=str(ROOT / "cluster/.cache/kubeconfig"),
        help="the cluster (default: the one cluster/harness.py writes)",
    )
    add("--namespace", default="neuron-soak", help="the soak's own namespace")
    add("--chart-namespace", default="neuron", help="where the chart runs")
    add("--image", default="neuron-k8s:0.1.0", help="image of the soak's pods (loaded on kind)")
    add("--scheduler", default="my-scheduler", help="scheduler of the device-plugin pods")
    add("--max-pods", type=int, default=8, help="at most this many soak pods at once")
    add("--fault-every", type=float, default=60.0, help="seconds between faults")
    add("--hold", type=float, default=20.0, help="seconds a pause or an unhealthy device lasts")
    add("--tick", type=float, default=2.0, help="seconds between churn steps and samples")
    add("--settle", type=float, default=240.0, help="seconds allowed to get capacity back")
    add("--seed", type=int, default=1, help="seed of the pods' lifetimes")
    return p


def parse(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> argparse.Namespace:
    """The options: flags first, then NEURON_SOAK_* variables, then the defaults."""
    p = parser()
    environ = os.environ if environ is None else environ
    defaults = {}
    for action in p._actions:
        name = PREFIX + action.dest.upper()
        if action.dest != "help" and name in environ:
            convert = action.type if callable(action.type) else str
            defaults[action.dest] = convert(environ[name])
        if action.help and action.dest != "help":
            action.help += f" [{name}]"
    p.set_defaults(**defaults)
    return p.parse_args(argv)
