"""The flags and environment variables that turn hardware-error reading on, in both CLIs
(docs/architecture.md, "Hardware errors"): off by default, the state file under
/var/lib/neuron-k8s."""

from __future__ import annotations

from neuron_k8s.deviceplugin import cli as dp_cli
from neuron_k8s.dra import cli as dra_cli

STATE = "/var/lib/neuron-k8s/hardware-errors.json"


def test_the_plugin_reads_no_kernel_messages_by_default() -> None:
    c = dp_cli.parse_args([], {})
    assert (c.kernel_messages, c.hardware_error_state) == ("", STATE)


def test_the_plugin_takes_both_from_its_environment() -> None:
    env = {"NEURON_DP_KERNEL_MESSAGES": "/dev/kmsg", "NEURON_DP_HARDWARE_ERROR_STATE": "/s.json"}
    c = dp_cli.parse_args([], env)
    assert (c.kernel_messages, c.hardware_error_state) == ("/dev/kmsg", "/s.json")


def test_the_plugins_flags_beat_its_environment() -> None:
    env = {"NEURON_DP_KERNEL_MESSAGES": "/dev/kmsg", "NEURON_DP_HARDWARE_ERROR_STATE": "/s.json"}
    argv = ["--kernel-messages", "/var/log/kern.log", "--hardware-error-state", "/t.json"]
    c = dp_cli.parse_args(argv, env)
    assert (c.kernel_messages, c.hardware_error_state) == ("/var/log/kern.log", "/t.json")


def test_the_dra_driver_reads_no_kernel_messages_by_default() -> None:
    c = dra_cli.parse_args(["--node-name", "n1"], {})
    assert (c.kernel_messages, c.hardware_error_state) == ("", STATE)


def test_the_dra_driver_takes_both_from_its_environment() -> None:
    env = {
        "NODE_NAME": "n1",
        "NEURON_DRA_KERNEL_MESSAGES": "/dev/kmsg",
        "NEURON_DRA_HARDWARE_ERROR_STATE": "/s.json",
    }
    c = dra_cli.parse_args([], env)
    assert (c.kernel_messages, c.hardware_error_state) == ("/dev/kmsg", "/s.json")


def test_the_dra_drivers_flags_beat_its_environment() -> None:
    env = {"NODE_NAME": "n1", "NEURON_DRA_KERNEL_MESSAGES": "/dev/kmsg"}
    c = dra_cli.parse_args(["--kernel-messages", "/var/log/kern.log"], env)
    assert c.kernel_messages == "/var/log/kern.log"
