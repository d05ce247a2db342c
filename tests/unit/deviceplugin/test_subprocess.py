"""The plugin as a real process (the console script and `python -m`), against the kubelet
stand-in: registration, allocation, a kubelet restart, SIGTERM, --help and the environment."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from dp_harness import NEURON, NEURONCORE, FakeKubelet, allocate, ids, preferred, wait_until
from neuron_k8s.deviceplugin.cli import FLAGS, env_name


def console_script() -> str:
    beside = Path(sys.executable).parent / "neuron-device-plugin"
    found = str(beside) if beside.exists() else shutil.which("neuron-device-plugin")
    assert found, "the neuron-device-plugin console script is not installed"
    return found


class Proc:
    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        self._out = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.p = subprocess.Popen(
            args,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )

    def text(self) -> str:
        return self.log.read_text()

    def stop(self) -> int:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            code = self.p.wait(timeout=10)
        finally:
            if self.p.poll() is None:
                self.p.kill()
            self._out.close()
        return code


@pytest.fixture
def run(tmp_path: Path) -> Iterator[list[Proc]]:
    procs: list[Proc] = []
    yield procs
    for p in procs:
        p.stop()


def plugin_args(plugin_dir: str, *extra: str) -> list[str]:
    return [
        "--device-plugin-dir",
        plugin_dir,
        "--http-port",
        "0",
        "--pod-resources-socket",
        "",
        *extra,
    ]


def test_process_registers_allocates_survives_a_kubelet_restart_and_stops_on_sigterm(
    kubelet: FakeKubelet, short_dir: str, tmp_path: Path, run: list[Proc]
) -> None:
    proc = Proc(
        [console_script(), *plugin_args(short_dir, "--fake-instance-type", "trn1.32xlarge")],
        tmp_path / "log",
    )
    run.append(proc)
    wait_until(
        lambda: kubelet.registered(NEURON) and kubelet.registered(NEURONCORE), 15, "registration"
    )
    assert "standalone" in proc.text()
    wait_until(lambda: len(kubelet.health(NEURON)) == 16, 5, "16 devices")
    assert preferred(kubelet.stub(NEURON), [i for i in ids(16) if i != "2"], 8) == [
        str(i) for i in range(8, 16)
    ]
    resp = allocate(kubelet.stub(NEURON), ["4", "5", "6", "7"])
    assert resp.container_responses[0].envs["NEURON_RT_VISIBLE_CORES"] == ",".join(
        str(i) for i in range(8, 16)
    )

    kubelet.restart()
    wait_until(lambda: len(kubelet.registered(NEURONCORE)) == 2, 10, "registered again")
    with pytest.raises(grpc.RpcError) as err:
        allocate(kubelet.stub(NEURONCORE), ["9"])
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    assert proc.stop() == 0
    assert not any("devplugin" in n for n in os.listdir(short_dir))
    assert "stopped" in proc.text()


def test_python_m_runs_the_plugin_configured_from_the_environment(
    kubelet: FakeKubelet, short_dir: str, tmp_path: Path, run: list[Proc]
) -> None:
    env = {
        env_name("fake_devices"): "3",
        env_name("fake_cores_per_device"): "4",
        env_name("device_plugin_dir"): short_dir,
        env_name("http_port"): "0",
        env_name("pod_resources_socket"): "",
    }
    proc = Proc([sys.executable, "-m", "neuron_k8s.deviceplugin"], tmp_path / "log", env)
    run.append(proc)
    wait_until(lambda: len(kubelet.health(NEURONCORE)) == 12, 15, "12 cores")
    assert len(kubelet.health(NEURON)) == 3
    assert proc.stop() == 0


def test_unknown_instance_type_fails_with_the_reason(tmp_path: Path, short_dir: str) -> None:
    done = subprocess.run(
        [console_script(), *plugin_args(short_dir, "--fake-instance-type", "p5.48xlarge")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert "'p5.48xlarge' is not a Neuron instance type" in done.stderr


def test_help_documents_every_flag_and_its_environment_variable() -> None:
    done = subprocess.run([console_script(), "--help"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    for flag, *_ in FLAGS:
        assert flag in text
        assert env_name(flag[2:].replace("-", "_")) in text.replace("- ", "-")


def test_contradicting_flags_exit_with_usage_error(short_dir: str) -> None:
    done = subprocess.run(
        [
            console_script(),
            *plugin_args(short_dir, "--fake-instance-type", "inf1.xlarge", "--fake-devices", "2"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "choose one fake shape" in done.stderr
