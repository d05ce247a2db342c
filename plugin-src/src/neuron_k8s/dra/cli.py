"""`neuron-dra-driver`: flags, each also read from the environment. The variables AWS's driver
reads keep their names (NODE_NAME, POD_UID, KUBELET_REGISTRAR_DIRECTORY_PATH,
KUBELET_PLUGINS_DIRECTORY_PATH, CDI_ROOT, HEALTHCHECK_PORT); the others are NEURON_DRA_<FLAG>."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from neuron_k8s import logs
from neuron_k8s.cli import boolean, build_config, env_defaults, port, run_until_signalled
from neuron_k8s.deviceplugin.discovery import DiscoveryError
from neuron_k8s.kube import ApiError

from .driver import Config, ConfigError, Driver

PROG = "neuron-dra-driver"
ENV_PREFIX = "NEURON_DRA_"
DEFAULTS = Config()


# flag, environment variable (None: NEURON_DRA_<FLAG>), type, help
FLAGS: list[tuple[str, str | None, Callable[[str], Any], str]] = [
    ("--node-name", "NODE_NAME", str, "Name of this node: the pool and the slices' node."),
    ("--driver-name", None, str, "The driver's name, as in DeviceClasses and ResourceSlices."),
    ("--kubeconfig", None, str, "Kubeconfig file; without it, the in-cluster service account."),
    (
        "--registrar-dir",
        "KUBELET_REGISTRAR_DIRECTORY_PATH",
        str,
        "The kubelet's plugins_registry directory, where the registration socket goes.",
    ),
    (
        "--plugins-dir",
        "KUBELET_PLUGINS_DIRECTORY_PATH",
        str,
        "The kubelet's plugins directory: the DRA socket and the checkpoint go in "
        "<dir>/<driver-name>/.",
    ),
    ("--cdi-root", "CDI_ROOT", str, "Directory of the CDI spec files the runtime reads."),
    ("--health-port", "HEALTHCHECK_PORT", port, "Port of /healthz, /readyz and /metrics."),
    (
        "--pod-uid",
        "POD_UID",
        str,
        "This pod's UID: names the sockets, so that a rolling update can run two drivers.",
    ),
    ("--log-level", None, str, "One of debug, info, warning, error. Logs are JSON lines."),
    (
        "--fake-instance-type",
        None,
        str,
        "Fake mode: publish the devices of this Neuron instance type, with no hardware.",
    ),
    (
        "--fake-instance-type-label",
        None,
        str,
        "Fake mode: imitate the instance type named by this label of the driver's node.",
    ),
    (
        "--fake-health-file",
        None,
        str,
        "File of unhealthy device indices, one a line, polled every second; an unhealthy "
        "device is tainted in the slices (or taken out where the API server drops taints).",
    ),
    (
        "--core-partitions",
        None,
        boolean,
        "Also publish sets of contiguous NeuronCores and runs of adjacent devices as devices "
        "of their own, sharing counters with the whole devices (true or false). Needs the "
        "feature gate DRAPartitionableDevices (beta and on from Kubernetes 1.36) on the API "
        "server and the scheduler; when the API server refuses or drops the counters, only "
        "whole devices are published.",
    ),
    (
        "--core-set-sizes",
        None,
        str,
        "Which core sets core partitions publish: powers (1, 2, 4 and 8 cores) or all "
        "(every length up to 32).",
    ),
    (
        "--unhealthy-taint-effect",
        None,
        str,
        "Effect of the taint an unhealthy device gets: NoSchedule (no new claim gets it) or "
        "NoExecute (the pods using it are evicted too).",
    ),
    ("--sysfs-root", None, str, "Root of sysfs (real mode)."),
    ("--dev-root", None, str, "Directory of the neuronN device nodes (real mode)."),
    ("--lnc-config", None, str, "trn2 logical NeuronCore size file (1 or 2)."),
    (
        "--kernel-messages",
        None,
        str,
        "Kernel-message source read for Neuron hardware errors (NEURON_HW_ERR=...): /dev/kmsg, "
        "or a dmesg or syslog text file. A device that reports one is tainted until the node "
        "reboots, and the node gets the condition NeuronHealth. Empty: not read.",
    ),
    (
        "--pod-resources-socket",
        None,
        str,
        "The kubelet's PodResources socket. The driver lists it now and then, which makes the "
        "kubelet forget the device-plugin allocations of pods that are gone: without that, a "
        "node that ran a device plugin refuses DRA's aws.amazon.com/neuron pods five minutes "
        "after the plugin left. Empty: not used.",
    ),
    (
        "--hardware-error-state",
        None,
        str,
        "File keeping the hardware errors of this boot across restarts (with --kernel-messages); "
        "delete it and restart to clear them after a repair.",
    ),
]


def _dest(flag: str) -> str:
    return flag[2:].replace("-", "_")


def env_name(flag: str, env: str | None) -> str:
    return env or ENV_PREFIX + _dest(flag).upper()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Kubernetes DRA driver for AWS Neuron devices (driver neuron.aws.com, "
            "resource.k8s.io/v1): publishes the node's devices as ResourceSlices with AWS's "
            "attributes and prepares allocated claims through CDI, with a fake mode that "
            "needs no hardware. Every flag can also be set in the environment variable shown; "
            "a flag on the command line wins."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for flag, env, kind, text in FLAGS:
        dest = _dest(flag)
        parser.add_argument(
            flag,
            dest=dest,
            type=kind,
            default=getattr(DEFAULTS, dest),
            metavar=dest.upper(),
            help=f"{text} [env {env_name(flag, env)}]",
        )
    return parser


def parse_args(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    """Flags over environment over defaults; errors exit with status 2 like argparse."""
    parser = build_parser()
    env_defaults(
        parser,
        [(_dest(flag), [env_name(flag, env)], kind) for flag, env, kind, _ in FLAGS],
        os.environ if environ is None else environ,
    )
    return build_config(parser, parser.parse_args(argv), Config, ConfigError)


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_args(argv)
    logs.setup(config.log_level)
    return run_until_signalled(
        Driver(config), PROG, "dra.main", (DiscoveryError, ApiError, OSError, ValueError)
    )
