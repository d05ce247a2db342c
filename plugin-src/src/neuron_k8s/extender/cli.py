"""neuron-scheduler-extender: the console script."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from .. import logs
from ..kube import KubeClient
from ..pods import INSTANCE_TYPE_LABEL
from .server import ExtenderServer
from .state import ClusterState
from .verbs import Extender

ENV_PREFIX = "NEURON_EXTENDER_"
DEFAULT_PORT = 12345

log = logs.get_logger("extender.main")


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(ENV_PREFIX + name, default)


def _default_port() -> int:
    # NEURON_EXTENDER_PORT, then AWS's PORT, so AWS's manifests keep working.
    raw = _env("PORT") or os.environ.get("PORT") or str(DEFAULT_PORT)
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"neuron-scheduler-extender: port {raw!r} is not a number") from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="neuron-scheduler-extender",
        description=(
            "Scheduler extender for AWS Neuron devices: answers kube-scheduler's filter, "
            "prioritize and bind calls so that every container gets a valid contiguous set of "
            "NeuronCores or Neuron devices, derived from the pods and nodes it watches. "
            f"Every flag can also be set by the environment variable {ENV_PREFIX}<FLAG> "
            "(upper case, dashes as underscores)."
        ),
    )
    p.add_argument(
        "--port",
        type=int,
        default=None,
        help=f"TCP port of the HTTP server (POST /filter /prioritize /bind, GET /healthz "
        f"/readyz /metrics). Env {ENV_PREFIX}PORT, or PORT as AWS's extender reads it; "
        f"default {DEFAULT_PORT}.",
    )
    p.add_argument(
        "--address",
        default=_env("ADDRESS", "0.0.0.0"),
        help=f"Address to listen on; '::' for IPv6. Env {ENV_PREFIX}ADDRESS; default %(default)s.",
    )
    p.add_argument(
        "--kubeconfig",
        default=_env("KUBECONFIG"),
        help=f"Kubeconfig file to reach the API server. Env {ENV_PREFIX}KUBECONFIG; default: "
        "the in-cluster service account. The extender needs API access.",
    )
    p.add_argument(
        "--instance-type-label",
        default=_env("INSTANCE_TYPE_LABEL", INSTANCE_TYPE_LABEL),
        help=f"Node label holding the instance type, which gives the topology rule. Env "
        f"{ENV_PREFIX}INSTANCE_TYPE_LABEL; default %(default)s.",
    )
    p.add_argument(
        "--log-level",
        default=_env("LOG_LEVEL", "info"),
        choices=logs.LEVELS,
        help=f"Log level of the JSON logs on stderr. Env {ENV_PREFIX}LOG_LEVEL; "
        "default %(default)s.",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    port = args.port if args.port is not None else _default_port()
    logs.setup(args.log_level)
    try:
        client = KubeClient.from_config(args.kubeconfig)
    except (OSError, ValueError) as err:
        print(f"neuron-scheduler-extender: cannot read kubeconfig: {err}", file=sys.stderr)
        return 2
    if client is None:
        print(
            "neuron-scheduler-extender: no API access: pass --kubeconfig or run in a cluster",
            file=sys.stderr,
        )
        return 2
    extender = Extender(client, ClusterState(instance_type_label=args.instance_type_label))
    try:
        server = ExtenderServer(extender, args.address, port)
    except OSError as err:
        print(
            f"neuron-scheduler-extender: cannot listen on {args.address}:{port}: {err}",
            file=sys.stderr,
        )
        return 2
    extender.start()
    log.info("serving", address=args.address, port=server.port, api=client.server)

    done = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        log.info("stopping", signal=signum)
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    server.start()
    done.wait()
    server.stop()
    extender.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
