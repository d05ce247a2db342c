"""Flag and environment parsing of neuron-device-plugin."""

from __future__ import annotations

import pytest
from neuron_k8s.deviceplugin.cli import parse_args


def test_defaults_follow_the_contract() -> None:
    c = parse_args([], {})
    assert c.device_plugin_dir == "/var/lib/kubelet/device-plugins"
    assert c.http_port == 8080
    assert c.log_level == "info"
    assert c.lnc_config == "/opt/aws/neuron/logical_nc_config"
    assert c.kubeconfig is None and not c.fake


def test_every_flag_can_come_from_the_environment() -> None:
    env = {
        "NEURON_DP_DEVICE_PLUGIN_DIR": "/d",
        "NEURON_DP_KUBECONFIG": "/k",
        "NEURON_DP_NODE_NAME": "n1",
        "NEURON_DP_HTTP_PORT": "9000",
        "NEURON_DP_LOG_LEVEL": "debug",
        "NEURON_DP_FAKE_HEALTH_FILE": "/h",
        "NEURON_DP_SYSFS_ROOT": "/s",
        "NEURON_DP_DEV_ROOT": "/v",
        "NEURON_DP_LNC_CONFIG": "/l",
        "NEURON_DP_POD_RESOURCES_SOCKET": "/p.sock",
        "NEURON_DP_WITHHOLD_IN_USE": "false",
        "NEURON_DP_FAKE_INSTANCE_TYPE": "trn2.48xlarge",
    }
    c = parse_args([], env)
    assert (c.device_plugin_dir, c.kubeconfig, c.node_name, c.http_port) == ("/d", "/k", "n1", 9000)
    assert (c.log_level, c.fake_health_file, c.sysfs_root, c.dev_root) == (
        "debug",
        "/h",
        "/s",
        "/v",
    )
    assert (c.lnc_config, c.pod_resources_socket) == ("/l", "/p.sock")
    assert c.withhold_in_use is False and c.fake_instance_type == "trn2.48xlarge"


def test_fake_counts_come_from_the_environment_as_integers() -> None:
    c = parse_args([], {"NEURON_DP_FAKE_DEVICES": "4", "NEURON_DP_FAKE_CORES_PER_DEVICE": "2"})
    assert (c.fake_devices, c.fake_cores_per_device) == (4, 2)


def test_flag_wins_over_environment() -> None:
    c = parse_args(["--http-port", "81"], {"NEURON_DP_HTTP_PORT": "9000"})
    assert c.http_port == 81


def test_node_name_falls_back_to_node_name_variable() -> None:
    assert parse_args([], {"NODE_NAME": "from-downward-api"}).node_name == "from-downward-api"


def test_bad_environment_value_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse_args([], {"NEURON_DP_HTTP_PORT": "eighty"})
    assert exit_.value.code == 2
    assert "NEURON_DP_HTTP_PORT" in capsys.readouterr().err


def test_fake_devices_without_cores_per_device_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--fake-devices", "2"], {})
    assert "--fake-cores-per-device" in capsys.readouterr().err


def test_unknown_log_level_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--log-level", "loud"], {})
    assert "--log-level" in capsys.readouterr().err


def test_zero_fake_devices_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--fake-devices", "0", "--fake-cores-per-device", "2"], {})
    assert "at least 1" in capsys.readouterr().err
