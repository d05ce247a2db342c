"""neuron-scheduler-extender: the console script."""

from __future__ import annotations

import argparse
import os
import signal
import ssl
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from .. import logs
from ..kube import KubeClient
from ..pods import INSTANCE_TYPE_LABEL
from . import tlsflags
from .requeue import Requeuer
from .schedulerrestart import SchedulerRestarter, ca_hash
from .server import ExtenderServer
from .state import ClusterState
from .tls import ServerTls
from .verbs import Extender

ENV_PREFIX = "NEURON_EXTENDER_"
DEFAULT_PORT = 12345
DEFAULT_API_TIMEOUT = 3.0
DEFAULT_LIST_TIMEOUT = 60.0

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


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value <= 300:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 300 seconds: {text}")
    return value


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
        "--api-timeout",
        type=_seconds,
        default=_seconds(_env("API_TIMEOUT") or str(DEFAULT_API_TIMEOUT)),
        help=f"Seconds each Kubernetes API request may take. bind makes up to three, all within "
        f"kube-scheduler's extender httpTimeout, so keep three of these below it. Env "
        f"{ENV_PREFIX}API_TIMEOUT; default %(default)s.",
    )
    p.add_argument(
        "--list-timeout",
        type=_seconds,
        default=_seconds(_env("LIST_TIMEOUT") or str(DEFAULT_LIST_TIMEOUT)),
        help=f"Seconds each page of the node and pod lists may take (lists are read in pages "
        f"of 500, off the verbs' path; a large cluster's first page can take longer than "
        f"--api-timeout). Env {ENV_PREFIX}LIST_TIMEOUT; default %(default)s.",
    )
    p.add_argument(
        "--pod-name",
        default=_env("POD_NAME"),
        help=f"Name of the extender's own pod (the downward API's metadata.name). With "
        f"--pod-namespace, the extender patches one annotation of it when room appears after it "
        f"turned a pod away, so that kube-scheduler retries that pod at once. Env "
        f"{ENV_PREFIX}POD_NAME.",
    )
    p.add_argument(
        "--pod-namespace",
        default=_env("POD_NAMESPACE"),
        help=f"Namespace of the extender's own pod. Env {ENV_PREFIX}POD_NAMESPACE.",
    )
    p.add_argument(
        "--scheduler-deployment",
        default=_env("SCHEDULER_DEPLOYMENT", ""),
        help=f"Name of my-scheduler's Deployment in --pod-namespace. With TLS, when the client "
        f"CA file's content changes the extender sets an annotation of its pod template so that "
        f"my-scheduler restarts with the new CA (kube-scheduler loads it only at start); it "
        f"needs get and patch on that Deployment. Empty: off. Env "
        f"{ENV_PREFIX}SCHEDULER_DEPLOYMENT.",
    )
    p.add_argument(
        "--instance-type-label",
        default=_env("INSTANCE_TYPE_LABEL", INSTANCE_TYPE_LABEL),
        help=f"Node label holding the instance type, which gives the topology rule. Env "
        f"{ENV_PREFIX}INSTANCE_TYPE_LABEL; default %(default)s.",
    )
    p.add_argument(
        "--scheduler-name",
        default=_env("SCHEDULER_NAME"),
        help=f"The only scheduler whose pods bind accepts (the pod's spec.schedulerName), such as "
        f"my-scheduler. Empty: any. Env {ENV_PREFIX}SCHEDULER_NAME.",
    )
    tlsflags.add_arguments(p, _env)
    p.add_argument(
        "--http-port",
        type=int,
        default=int(_env("HTTP_PORT", "0") or 0),
        help=f"Plain-HTTP port of /healthz, /readyz and /metrics only, for probes and scrapers "
        f"when the verbs need a client certificate. 0: none. Env {ENV_PREFIX}HTTP_PORT.",
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
        client = KubeClient.from_config(args.kubeconfig, timeout=args.api_timeout)
    except (OSError, ValueError) as err:
        print(f"neuron-scheduler-extender: cannot read kubeconfig: {err}", file=sys.stderr)
        return 2
    if client is None:
        print(
            "neuron-scheduler-extender: no API access: pass --kubeconfig or run in a cluster",
            file=sys.stderr,
        )
        return 2
    requeue = None
    if args.pod_name and args.pod_namespace:
        requeue = Requeuer(client, args.pod_namespace, args.pod_name)
    else:
        log.warning(
            "no --pod-name/--pod-namespace: a pod turned away just before room appears waits "
            "for kube-scheduler's next retry"
        )
    certs = None
    if args.tls_issue_dir:
        made = tlsflags.cluster_certs(args, client)
        if isinstance(made, str):
            print(f"neuron-scheduler-extender: {made}", file=sys.stderr)
            return 2
        certs = made
    tls_files: tuple[str | None, str | None, str | None] = (
        certs.files
        if certs is not None
        else (args.tls_cert_file, args.tls_key_file, args.tls_client_ca_file)
    )
    if any(tls_files) and not all(tls_files):
        print(
            "neuron-scheduler-extender: --tls-cert-file, --tls-key-file and "
            "--tls-client-ca-file go together",
            file=sys.stderr,
        )
        return 2
    extender = Extender(
        client,
        ClusterState(instance_type_label=args.instance_type_label),
        requeue=requeue,
        scheduler_name=args.scheduler_name or None,
        list_timeout=args.list_timeout,
    )
    restarter = None
    if args.scheduler_deployment and all(tls_files):
        if not args.pod_namespace:
            print(
                "neuron-scheduler-extender: --scheduler-deployment needs --pod-namespace",
                file=sys.stderr,
            )
            return 2
        restarter = SchedulerRestarter(client, args.pod_namespace, args.scheduler_deployment)
    if certs is not None:
        if restarter is not None:
            rolls = restarter
            certs.on_new_ca = lambda pem: rolls.ca_changed(ca_hash(pem))
        # Nothing can be served before the certificates exist.
        if not certs.ensure_until_done():
            return 1
    try:
        on_ca_change = restarter.ca_changed if restarter is not None else None
        cert, key, client_ca = tls_files
        tls = None
        if cert and key and client_ca:
            tls = ServerTls(cert, key, client_ca, on_ca_change=on_ca_change)
        server = ExtenderServer(extender, args.address, port, tls)
        servers = [server]
        if args.http_port:
            servers.append(
                ExtenderServer(
                    extender, args.address, args.http_port, probes_only=True, metrics=server.metrics
                )
            )
    except (OSError, ssl.SSLError) as err:
        print(f"neuron-scheduler-extender: cannot serve: {err}", file=sys.stderr)
        return 2
    if tls is None:
        log.warning(
            "serving the verbs over plain HTTP: anyone who can reach the port can bind pods "
            "(give --tls-cert-file, --tls-key-file and --tls-client-ca-file)"
        )
    extender.start()
    if certs is not None:
        certs.start()
    if restarter is not None and tls is not None:
        metrics = server.metrics
        restarter.start(
            tls.ca_hash,
            poll=tls,
            outcome=lambda outcome: metrics.scheduler_restarts.labels(outcome).inc(),
        )
    log.info(
        "serving",
        address=args.address,
        port=server.port,
        tls=tls is not None,
        http_port=args.http_port or None,
        api=client.server,
    )

    done = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        log.info("stopping", signal=signum)
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    for srv in servers:
        srv.start()
    done.wait()
    for srv in servers:
        srv.stop()
    if restarter is not None:
        restarter.stop()
    if certs is not None:
        certs.stop()
    extender.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
