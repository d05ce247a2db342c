"""Health, readiness, metrics and the command line."""

from __future__ import annotations

import os
import subprocess
import sys

from extender_helpers import filter_args, make_node, make_pod
from neuron_k8s.extender import cli
from neuron_k8s.extender.server import ExtenderServer
from neuron_k8s.extender.verbs import Extender
from neuron_k8s.kube import KubeClient


def test_healthz_answers_ok(start_extender):
    resp = start_extender().get("/healthz")
    assert (resp.status, resp.body) == (200, b"ok\n")


def test_readyz_answers_ok_once_nodes_and_pods_are_listed(start_extender):
    assert start_extender().get("/readyz").status == 200


def test_not_ready_before_listing_and_filter_says_why(api):
    # An extender whose watches never started: nothing listed yet.
    extender = Extender(KubeClient.for_url(api.url))
    server = ExtenderServer(extender, "127.0.0.1", 0)
    server.poll_interval = 0.02
    server.start()
    try:
        from extender_helpers import RunningExtender

        ext = RunningExtender(extender, server)
        assert ext.get("/readyz").status == 503
        body = ext.post("filter", filter_args(make_pod("p"), ["n"])).json()
        assert "still listing nodes and pods" in body["Error"]
        assert ext.get("/healthz").status == 200
    finally:
        server.stop()


def test_metrics_expose_requests_latency_and_state(cluster, start_extender):
    cluster.put("nodes", make_node("inf2-a"))
    ext = start_extender()
    ext.post("filter", filter_args(make_pod("p"), ["inf2-a", "ghost"]))
    text = ext.get("/metrics").body.decode()
    assert 'neuron_extender_requests_total{code="200",verb="filter"} 1.0' in text
    assert 'neuron_extender_request_duration_seconds_count{verb="filter"} 1.0' in text
    assert 'neuron_extender_filter_nodes_total{result="passed"} 1.0' in text
    assert 'neuron_extender_filter_nodes_total{result="unresolvable"} 1.0' in text
    assert "neuron_extender_neuroncores 24.0" in text
    assert "neuron_extender_ready 1.0" in text


def test_two_extenders_in_one_process_keep_separate_metrics(start_extender):
    a, b = start_extender(), start_extender()
    a.get("/filter")
    assert 'verb="filter"' in a.get("/metrics").body.decode()
    assert 'verb="filter"' not in b.get("/metrics").body.decode()


def test_help_documents_every_flag():
    out = subprocess.run(
        [sys.executable, "-m", "neuron_k8s.extender.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for flag in ("--port", "--address", "--kubeconfig", "--instance-type-label", "--log-level"):
        assert flag in out
    assert "12345" in out
    assert "NEURON_EXTENDER_PORT" in out and "PORT" in out


def test_port_defaults_to_12345(monkeypatch):
    monkeypatch.delenv("PORT", raising=False)
    monkeypatch.delenv("NEURON_EXTENDER_PORT", raising=False)
    assert cli._default_port() == 12345


def test_port_honours_aws_port_variable(monkeypatch):
    monkeypatch.delenv("NEURON_EXTENDER_PORT", raising=False)
    monkeypatch.setenv("PORT", "8888")
    assert cli._default_port() == 8888


def test_port_prefers_neuron_extender_port_over_port(monkeypatch):
    monkeypatch.setenv("PORT", "8888")
    monkeypatch.setenv("NEURON_EXTENDER_PORT", "9999")
    assert cli._default_port() == 9999


def test_flags_read_environment_with_prefix(monkeypatch):
    monkeypatch.setenv("NEURON_EXTENDER_LOG_LEVEL", "debug")
    monkeypatch.setenv("NEURON_EXTENDER_KUBECONFIG", "/etc/kube/config")
    args = cli.parser().parse_args([])
    assert (args.log_level, args.kubeconfig) == ("debug", "/etc/kube/config")


def test_without_api_access_it_exits_with_a_message(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    env.pop("NEURON_EXTENDER_KUBECONFIG", None)
    proc = subprocess.run(
        [sys.executable, "-m", "neuron_k8s.extender.cli", "--port", "0"],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "no API access" in proc.stderr


def test_serves_with_a_kubeconfig_until_terminated(api, cluster, tmp_path):
    import json
    import signal
    import socket
    import time
    import urllib.request

    cluster.put("nodes", make_node("inf2-a"))
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "fake",
                "clusters": [{"name": "fake", "cluster": {"server": api.url}}],
                "users": [{"name": "me", "user": {"token": "t"}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "me"}}],
            }
        )
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "neuron_k8s.extender.cli",
            "--kubeconfig",
            str(kubeconfig),
            "--address",
            "127.0.0.1",
            "--log-level",
            "debug",
        ],
        env={**os.environ, "PORT": str(port)},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "extender process never became ready"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert '"event": "serving"' in err
