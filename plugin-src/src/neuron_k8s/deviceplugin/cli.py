"""`neuron-device-plugin`: flags, each also read from the environment as NEURON_DP_<FLAG>."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import fields
from typing import Any

from neuron_k8s import logs
from neuron_k8s.kube import ApiError

from .api import DEFAULT_DEVICE_PLUGIN_DIR, DEFAULT_POD_RESOURCES_SOCKET
from .discovery import DiscoveryError
from .plugin import Config, ConfigError, Plugin

ENV_PREFIX = "NEURON_DP_"
PROG = "neuron-device-plugin"


def env_name(dest: str) -> str:
    return ENV_PREFIX + dest.upper()


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"not a port number: {text}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


# flag, type, default, help
FLAGS: list[tuple[str, Callable[[str], Any], Any, str]] = [
    (
        "--device-plugin-dir",
        str,
        DEFAULT_DEVICE_PLUGIN_DIR,
        "Directory of the kubelet's device plugin sockets: kubelet.sock, and where this plugin "
        "creates neuron-devplugin.sock and neuroncore-devplugin.sock.",
    ),
    (
        "--kubeconfig",
        str,
        None,
        "Kubeconfig file for the Kubernetes API. Without it, the in-cluster service account is "
        "used when present; with neither, the plugin runs standalone on the kubelet's IDs.",
    ),
    (
        "--node-name",
        str,
        None,
        "Name of this node (also read from NODE_NAME): which pods' extender annotations to serve "
        "and which node to annotate with unhealthy devices.",
    ),
    ("--http-port", _port, 8080, "Port of /healthz, /readyz and /metrics."),
    ("--log-level", str, "info", "One of debug, info, warning, error. Logs are JSON lines."),
    (
        "--fake-instance-type",
        str,
        None,
        "Fake mode: advertise the shape of this Neuron instance type (inf1.xlarge to "
        "trn2u.48xlarge) with no hardware and no device nodes.",
    ),
    (
        "--fake-devices",
        _positive,
        None,
        "Fake mode: advertise this many devices (with --fake-cores-per-device), ring topology.",
    ),
    ("--fake-cores-per-device", _positive, None, "Fake mode: cores per fake device."),
    (
        "--fake-instance-type-label",
        str,
        None,
        "Fake mode: imitate the instance type named by this label of the plugin's own node "
        "(needs the API and the node name).",
    ),
    (
        "--fake-health-file",
        str,
        None,
        "File of unhealthy device indices, one a line, polled every second; a missing file "
        "means all devices are healthy. Bad lines are ignored with a warning.",
    ),
    (
        "--sysfs-root",
        str,
        "/sys",
        "Root of sysfs, where the Neuron driver's devices/virtual/neuron_device tree is read.",
    ),
    ("--dev-root", str, "/dev", "Directory holding the driver's neuronN device nodes."),
    (
        "--lnc-config",
        str,
        "/opt/aws/neuron/logical_nc_config",
        "trn2 logical NeuronCore size file (1 or 2; default 2 when missing).",
    ),
    (
        "--pod-resources-socket",
        str,
        DEFAULT_POD_RESOURCES_SOCKET,
        "Kubelet PodResources API socket, read to know which IDs running containers hold "
        "(empty: do not use it).",
    ),
    (
        "--withhold-in-use",
        _bool,
        True,
        "Advertise as Unhealthy the IDs whose cores the kubelet holds through the other "
        "resource (the cores of a device handed out whole, the device of a core handed out), "
        "so that the kubelet's and the default scheduler's counts are exact: true or false. "
        "Turn it off when every Neuron pod goes through the extender, whose count must never "
        "be undercut by the kubelet's (the chart does).",
    ),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Kubernetes device plugin for AWS Neuron devices: serves aws.amazon.com/neuron "
            "(whole devices) and aws.amazon.com/neuroncore (cores) to the kubelet, with a fake "
            "mode that needs no hardware. Every flag can also be set in the environment as "
            f"{ENV_PREFIX}<FLAG> (for example {env_name('fake_instance_type')}); a flag on "
            "the command line wins."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for flag, kind, default, text in FLAGS:
        dest = flag[2:].replace("-", "_")
        parser.add_argument(
            flag,
            dest=dest,
            type=kind,
            default=default,
            metavar=dest.upper(),
            help=f"{text} [env {env_name(dest)}]",
        )
    return parser


def parse_args(argv: Sequence[str] | None = None, environ: dict[str, str] | None = None) -> Config:
    """Flags over environment over defaults; errors exit with status 2 like argparse."""
    env = os.environ if environ is None else environ
    parser = build_parser()
    overrides: dict[str, Any] = {}
    for flag, kind, _, _ in FLAGS:
        dest = flag[2:].replace("-", "_")
        raw = env.get(env_name(dest))
        if raw is None and dest == "node_name":
            raw = env.get("NODE_NAME")
        if raw is None or raw == "":
            continue
        try:
            overrides[dest] = kind(raw)
        except (ValueError, argparse.ArgumentTypeError) as err:
            parser.error(f"{env_name(dest)}={raw!r}: {err}")
    parser.set_defaults(**overrides)
    args = parser.parse_args(argv)
    if args.log_level not in logs.LEVELS:
        parser.error(f"--log-level must be one of {', '.join(logs.LEVELS)}")
    known = {f.name for f in fields(Config)}
    config = Config(**{k: v for k, v in vars(args).items() if k in known})
    try:
        config.validate()
    except ConfigError as err:
        parser.error(str(err))
    return config


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_args(argv)
    logs.setup(config.log_level)
    log = logs.get_logger("deviceplugin")
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("signal received, stopping", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    plugin = Plugin(config)
    try:
        plugin.start()
    except (DiscoveryError, ApiError, OSError, ValueError) as err:
        log.error("startup failed", error=str(err))
        plugin.stop()
        print(f"{PROG}: {err}", file=sys.stderr)
        return 1
    while not stop.wait(1.0):
        pass
    plugin.stop()
    return 0
