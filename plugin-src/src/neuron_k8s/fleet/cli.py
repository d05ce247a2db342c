"""`kubectl neuron` (the console script `kubectl-neuron`, kubectl's plugin convention; also
runnable alone): `nodes`, `pods` and `why POD`. Every flag is also an environment variable,
KUBECTL_NEURON_<FLAG>; KUBECONFIG and NO_COLOR are read as kubectl and others read them."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from neuron_k8s.cli import boolean, env_defaults
from neuron_k8s.dra.devices import DEFAULT_DRIVER
from neuron_k8s.kube import ApiError, KubeClient

from . import apiread
from .drawing import draw_nodes, table
from .model import NodeView, node_views
from .podlist import HEADER, pod_rows
from .why import explain

PROG = "kubectl-neuron"
ENV = "KUBECTL_NEURON_"


def output(text: str) -> str:
    if text not in ("text", "json"):
        raise argparse.ArgumentTypeError(f"output must be text or json, got {text!r}")
    return text


def positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def _common(p: argparse.ArgumentParser, defaults: bool) -> None:
    """The flags every command takes, before or after its name as kubectl's. After it they
    have no default of their own, so that they never undo one given before it."""

    def d(value: Any) -> Any:
        return value if defaults else argparse.SUPPRESS

    p.add_argument(
        "--kubeconfig", default=d(None), help="kubeconfig file (KUBECONFIG; else ~/.kube/config)"
    )
    p.add_argument("--context", default=d(None), help=f"kubeconfig context ({ENV}CONTEXT)")
    p.add_argument("--driver", default=d(DEFAULT_DRIVER), help=f"DRA driver ({ENV}DRIVER)")
    p.add_argument(
        "--request-timeout",
        type=positive,
        default=d(60.0),
        help=f"seconds per API request ({ENV}REQUEST_TIMEOUT)",
    )
    p.add_argument(
        "--no-color",
        action="store_true",
        default=d(False),
        help=f"no ANSI colour even on a terminal ({ENV}NO_COLOR, or NO_COLOR set)",
    )
    p.add_argument(
        "-o", "--output", type=output, default=d("text"), help=f"text or json ({ENV}OUTPUT)"
    )


def parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kubectl neuron",
        description="Who holds which NeuronCores, how fragmented each node is, and why a "
        "Neuron pod waits. Reads only the API: one list per kind. docs/kubectl-neuron.md",
    )
    _common(p, True)
    sub = p.add_subparsers(dest="command", required=True)
    nodes = sub.add_parser("nodes", help="each Neuron node's devices and cores, who holds them")
    nodes.add_argument("names", nargs="*", help="only these nodes")
    pods = sub.add_parser("pods", help="Neuron pods: node, container, cores, devices, path, age")
    pods.add_argument(
        "-A", "--all-namespaces", action="store_true", help=f"every namespace ({ENV}ALL_NAMESPACES)"
    )
    why = sub.add_parser("why", help="why a Neuron pod is Pending or refused")
    why.add_argument("pod", help="the pod's name")
    for s in (pods, why):
        s.add_argument("-n", "--namespace", help=f"namespace ({ENV}NAMESPACE; else the context's)")
    for s in (nodes, pods, why):
        _common(s, False)
    flags = [
        (name.lower(), [f"{ENV}{name}"], kind)
        for name, kind in (
            ("CONTEXT", str),
            ("DRIVER", str),
            ("REQUEST_TIMEOUT", positive),
            ("NO_COLOR", boolean),
            ("OUTPUT", output),
        )
    ]
    env_defaults(p, [("kubeconfig", ["KUBECTL_NEURON_KUBECONFIG"], str), *flags], environ)
    env_defaults(pods, [("all_namespaces", [f"{ENV}ALL_NAMESPACES"], boolean)], environ)
    for s in (pods, why):
        env_defaults(s, [("namespace", [f"{ENV}NAMESPACE"], str)], environ)
    return p


def colour_wanted(args: argparse.Namespace, stream: TextIO, environ: Mapping[str, str]) -> bool:
    """Colour on a terminal only, and never with --no-color or NO_COLOR (no-color.org)."""
    return stream.isatty() and not args.no_color and not environ.get("NO_COLOR")


def _json(doc: Any) -> str:
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def nodes_json(views: Sequence[NodeView]) -> list[dict[str, Any]]:
    out = []
    for v in views:
        room, shape = v.room, v.shape
        out.append(
            {
                "name": v.name,
                "instanceType": v.instance_type,
                "path": v.path,
                "devices": shape.devices if shape else None,
                "coresPerDevice": shape.cores_per_device if shape else None,
                "rule": shape.rule.value if shape else None,
                "heldCores": v.held.bit_count(),
                "freeCores": room.free_cores if room else None,
                "unhealthyDevices": {str(d): why for d, why in sorted(v.unhealthy.items())},
                "freeDeviceSets": {str(n): k for n, k in room.device_room} if room else {},
                "largestDeviceRequest": room.largest_device_request if room else None,
                "largestCoreRequest": room.largest_core_request if room else None,
                "fragmentation": room.fragmentation if room else None,
                "holdings": [
                    {
                        "namespace": h.namespace,
                        "pod": h.pod,
                        "container": h.container,
                        "claim": h.claim,
                        "asked": h.what,
                        "cores": list(h.cores),
                        "devices": list(h.devices),
                    }
                    for h in v.holdings
                ],
                "unreadable": [
                    {"namespace": u.namespace, "name": u.name, "reason": u.reason}
                    for u in v.unreadable
                ],
                "notes": v.notes,
            }
        )
    return out


def run(
    args: argparse.Namespace,
    client: KubeClient,
    namespace: str,
    out: TextIO,
    colour: bool,
    now: datetime,
) -> int:
    if args.command == "nodes":
        snap = apiread.read_fleet(client, args.driver)
        views = node_views(snap.nodes, snap.pods, snap.claims, snap.slices, args.driver)
        if args.names:
            views = [v for v in views if v.name in set(args.names)]
        out.write(_json(nodes_json(views)) if args.output == "json" else draw_nodes(views, colour))
        return 0
    if args.command == "pods":
        ns = None if args.all_namespaces else namespace
        # Every node's holdings are needed for the shapes; the pods of one namespace suffice.
        snap = apiread.read_fleet(client, args.driver, ns, live_only=False)
        views = node_views(snap.nodes, snap.pods, snap.claims, snap.slices, args.driver)
        rows = pod_rows(snap.pods, views, snap.claims, args.driver, now)
        if args.output == "json":
            out.write(_json([r.to_json() for r in rows]))
        elif rows:
            out.write(table(HEADER, [r.cells() for r in rows]))
        else:
            out.write(f"No Neuron pods in {'any namespace' if ns is None else ns}.\n")
        return 0
    pod = apiread.read_pod(client, namespace, args.pod)
    if pod is None:
        print(f"{PROG}: pod {namespace}/{args.pod} not found", file=sys.stderr)
        return 1
    snap = apiread.read_fleet(client, args.driver)
    views = node_views(snap.nodes, snap.pods, snap.claims, snap.slices, args.driver)
    why = explain(pod, views, apiread.pod_events(client, namespace, args.pod))
    out.write(_json(why.to_json()) if args.output == "json" else "\n".join(why.lines()) + "\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    environ = dict(os.environ)
    p = parser(environ)
    args = p.parse_args(argv)
    try:
        kubeconfig = apiread.kubeconfig_path(args.kubeconfig, environ)
        client, context_ns = apiread.connect(kubeconfig, args.context, args.request_timeout)
    except (OSError, ValueError) as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return 1
    namespace = getattr(args, "namespace", None) or context_ns or "default"
    colour = colour_wanted(args, sys.stdout, environ)
    try:
        return run(args, client, namespace, sys.stdout, colour, datetime.now(UTC))
    except ApiError as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
