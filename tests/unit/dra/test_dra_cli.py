"""`neuron-dra-driver`: its flags, the environment variables behind them (AWS's names where
AWS's driver has one), usage errors, and the process's start and stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from dra_harness import NODE, Dirs, FakeApi, FakeKubelet, wait_until
from neuron_k8s.dra.cli import parse_args

# Every variable the driver reads, named independently of the code that reads them.
ENVIRONMENT = {
    "NODE_NAME": "n1",
    "POD_UID": "pod-1",
    "KUBELET_REGISTRAR_DIRECTORY_PATH": "/reg",
    "KUBELET_PLUGINS_DIRECTORY_PATH": "/plugins",
    "CDI_ROOT": "/cdi",
    "HEALTHCHECK_PORT": "9090",
    "NEURON_DRA_DRIVER_NAME": "neuron.example.com",
    "NEURON_DRA_KUBECONFIG": "/kubeconfig",
    "NEURON_DRA_LOG_LEVEL": "debug",
    "NEURON_DRA_FAKE_INSTANCE_TYPE": "trn2.48xlarge",
    "NEURON_DRA_FAKE_HEALTH_FILE": "/health",
    "NEURON_DRA_SYSFS_ROOT": "/s",
    "NEURON_DRA_DEV_ROOT": "/v",
    "NEURON_DRA_LNC_CONFIG": "/l",
    "NEURON_DRA_CORE_PARTITIONS": "true",
}
LABEL_VARIABLE = "NEURON_DRA_FAKE_INSTANCE_TYPE_LABEL"  # excludes NEURON_DRA_FAKE_INSTANCE_TYPE


def run_driver(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "neuron_k8s.dra", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": os.environ.get("PATH", ""), **(env or {})},
    )


def usage_error(capsys: pytest.CaptureFixture[str], argv: list[str], env: dict[str, str]) -> str:
    with pytest.raises(SystemExit) as exit_:
        parse_args(argv, env)
    assert exit_.value.code == 2
    return capsys.readouterr().err


def test_help_exits_0_and_names_every_environment_variable() -> None:
    done = run_driver("--help")
    assert done.returncode == 0, done.stderr
    missing = [name for name in [*ENVIRONMENT, LABEL_VARIABLE] if name not in done.stdout]
    assert missing == []


def test_defaults_are_the_kubelets_directories_and_aws_driver_name() -> None:
    c = parse_args(["--node-name", "n1"], {})
    assert c.driver_name == "neuron.aws.com"
    assert c.registrar_dir == "/var/lib/kubelet/plugins_registry"
    assert c.plugins_dir == "/var/lib/kubelet/plugins"
    assert c.state_dir == "/var/lib/kubelet/plugins/neuron.aws.com"
    assert c.cdi_root == "/var/run/cdi"
    assert c.health_port == 51515
    assert (c.pod_uid, c.kubeconfig, c.fake_instance_type, c.log_level) == ("", None, None, "info")


def test_every_setting_can_come_from_the_environment() -> None:
    c = parse_args([], ENVIRONMENT)
    assert (c.node_name, c.pod_uid, c.registrar_dir, c.plugins_dir, c.cdi_root) == (
        "n1",
        "pod-1",
        "/reg",
        "/plugins",
        "/cdi",
    )
    assert (c.health_port, c.driver_name, c.kubeconfig, c.log_level) == (
        9090,
        "neuron.example.com",
        "/kubeconfig",
        "debug",
    )
    assert (c.fake_instance_type, c.fake_health_file) == ("trn2.48xlarge", "/health")
    assert (c.sysfs_root, c.dev_root, c.lnc_config) == ("/s", "/v", "/l")
    assert c.core_partitions is True


def test_core_partitions_are_off_unless_asked_for() -> None:
    assert parse_args(["--node-name", "n1"], {}).core_partitions is False
    assert parse_args(["--node-name", "n1", "--core-partitions", "yes"], {}).core_partitions


def test_a_core_partitions_value_that_is_not_true_or_false_exits_2_naming_the_variable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    err = usage_error(capsys, [], {"NODE_NAME": "n1", "NEURON_DRA_CORE_PARTITIONS": "maybe"})
    assert "NEURON_DRA_CORE_PARTITIONS='maybe': expected true or false" in err


def test_the_fake_instance_type_label_comes_from_the_environment() -> None:
    c = parse_args([], {"NODE_NAME": "n1", LABEL_VARIABLE: "node.kubernetes.io/instance-type"})
    assert c.fake_instance_type_label == "node.kubernetes.io/instance-type"


def test_a_flag_beats_its_environment_variable() -> None:
    c = parse_args(
        ["--node-name", "from-flag", "--health-port", "81", "--cdi-root", "/flag"],
        {"NODE_NAME": "from-env", "HEALTHCHECK_PORT": "9090", "CDI_ROOT": "/env"},
    )
    assert (c.node_name, c.health_port, c.cdi_root) == ("from-flag", 81, "/flag")


def test_an_empty_environment_variable_counts_as_unset() -> None:
    assert parse_args([], {"NODE_NAME": "n1", "CDI_ROOT": ""}).cdi_root == "/var/run/cdi"


def test_a_missing_node_name_exits_2_with_a_sentence_naming_both_ways_to_give_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    err = usage_error(capsys, [], {})
    assert "the node name is required (--node-name or NODE_NAME)" in err


@pytest.mark.parametrize("port", ["70000", "-1", "http"])
def test_a_bad_port_flag_exits_2(capsys: pytest.CaptureFixture[str], port: str) -> None:
    assert "--health-port" in usage_error(capsys, ["--health-port", port], {"NODE_NAME": "n1"})


def test_a_bad_port_in_the_environment_exits_2_naming_the_variable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    err = usage_error(capsys, [], {"NODE_NAME": "n1", "HEALTHCHECK_PORT": "99999"})
    assert "HEALTHCHECK_PORT='99999': not a port number: 99999" in err


def test_two_fake_shapes_at_once_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--fake-instance-type", "inf2.xlarge", "--fake-instance-type-label", "x"]
    assert "choose one fake shape" in usage_error(capsys, argv, {"NODE_NAME": "n1"})


def test_an_unknown_log_level_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert "--log-level must be one of" in usage_error(
        capsys, ["--log-level", "loud"], {"NODE_NAME": "n1"}
    )


def test_a_driver_name_with_a_slash_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    err = usage_error(capsys, ["--driver-name", "a/b"], {"NODE_NAME": "n1"})
    assert "--driver-name must be a DNS subdomain" in err


# --- the process ---
def test_a_kubeconfig_that_cannot_be_read_ends_the_driver_with_status_1_and_a_sentence(
    short_dir: str,
) -> None:
    missing = os.path.join(short_dir, "no-such-kubeconfig")
    done = run_driver(
        "--node-name", "n1", "--kubeconfig", missing, "--health-port", "0", "--plugins-dir",
        short_dir, "--registrar-dir", short_dir,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1].startswith("neuron-dra-driver: ")
    assert missing in done.stderr.splitlines()[-1]


def test_the_driver_process_configured_by_environment_serves_and_stops_on_sigterm(
    api: FakeApi, kubelet: FakeKubelet, dirs: Dirs, short_dir: str
) -> None:
    api.add_node(NODE, "inf2.24xlarge")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "NODE_NAME": NODE,
        "POD_UID": "p1",
        "KUBELET_REGISTRAR_DIRECTORY_PATH": dirs.registry,
        "KUBELET_PLUGINS_DIRECTORY_PATH": dirs.plugins,
        "CDI_ROOT": dirs.cdi,
        "HEALTHCHECK_PORT": "0",
        "NEURON_DRA_KUBECONFIG": api.kubeconfig(os.path.join(short_dir, "kubeconfig")),
        "NEURON_DRA_FAKE_INSTANCE_TYPE_LABEL": "node.kubernetes.io/instance-type",
        "NEURON_DRA_LNC_CONFIG": dirs.lnc,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "neuron_k8s.dra"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: kubelet.registered() or proc.poll() is not None, 15, "registration")
        wait_until(lambda: len(api.published_devices(NODE)) == 6, 10, "6 inf2 devices published")
        (reg,) = kubelet.registered()
        assert reg.info.endpoint == os.path.join(dirs.plugins, "neuron.aws.com", "dra-p1.sock")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        _, err = proc.communicate(timeout=10)
    assert not os.path.exists(reg.socket) and not os.path.exists(reg.info.endpoint), err
    assert api.node_slices(NODE) == []
