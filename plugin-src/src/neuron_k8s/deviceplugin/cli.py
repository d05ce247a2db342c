"""`neuron-device-plugin`: flags, each also read from the environment as NEURON_DP_<FLAG>."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from typing import Any

from neuron_k8s import logs
from neuron_k8s.cli import boolean, build_config, env_defaults, port, run_until_signalled
from neuron_k8s.hardwareerrors import DEFAULT_STATE
from neuron_k8s.kube import ApiError

from .api import DEFAULT_DEVICE_PLUGIN_DIR, DEFAULT_POD_RESOURCES_SOCKET
from .discovery import DiscoveryError
from .plugin import Config, ConfigError, Plugin

ENV_PREFIX = "NEURON_DP_"
PROG = "neuron-device-plugin"


def env_name(dest: str) -> str:
    return ENV_PREFIX + dest.upper()


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
        "creates neuron-devplugin-<suffix>.sock and neuroncore-devplugin-<suffix>.sock (a new "
        "suffix at each start).",
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
    ("--http-port", port, 8080, "Port of /healthz, /readyz and /metrics."),
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
        boolean,
        True,
        "Advertise as Unhealthy the IDs whose cores the kubelet holds through the other "
        "resource (the cores of a device handed out whole, the device of a core handed out), "
        "so that the kubelet's and the default scheduler's counts are exact: true or false. "
        "Turn it off when every Neuron pod goes through the extender, whose count must never "
        "be undercut by the kubelet's (the chart does).",
    ),
    (
        "--kernel-messages",
        str,
        "",
        "Kernel-message source read for Neuron hardware errors (NEURON_HW_ERR=...): /dev/kmsg, "
        "or a dmesg or syslog text file. A device that reports one is unhealthy until the node "
        "reboots, and the node gets the condition NeuronHealth. Empty: not read.",
    ),
    (
        "--hardware-error-state",
        str,
        DEFAULT_STATE,
        "File keeping the hardware errors of this boot across restarts (with --kernel-messages); "
        "delete it and restart to clear them after a repair.",
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
    parser = build_parser()
    flags = []
    for flag, kind, _, _ in FLAGS:
        dest = flag[2:].replace("-", "_")
        names = [env_name(dest), "NODE_NAME"] if dest == "node_name" else [env_name(dest)]
        flags.append((dest, names, kind))
    env_defaults(parser, flags, os.environ if environ is None else environ)
    return build_config(parser, parser.parse_args(argv), Config, ConfigError)


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_args(argv)
    logs.setup(config.log_level)
    return run_until_signalled(
        Plugin(config), PROG, "deviceplugin", (DiscoveryError, ApiError, OSError, ValueError)
    )
