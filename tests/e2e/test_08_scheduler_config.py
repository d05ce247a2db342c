"""The real kube-scheduler decodes (strictly) and validates each variant of the chart's
KubeSchedulerConfiguration, not only the one my-scheduler runs on this cluster.

Uses the kube-scheduler binary the harness built (cluster/.cache/k8s-<version>/bin, on the
suite's PATH); --write-config-to makes it exit after validation, so no cluster is touched.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import needs_kind

CHART = Path(__file__).resolve().parents[2] / "charts" / "neuron"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _client_certificate(tmp: Path) -> dict[str, Path]:
    """A CA, and a client certificate it signed, as PEM files (what kube-scheduler loads)."""
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-days", "1", "-subj", "/CN=e2e-ca", "-keyout", "ca.key", "-out", "ca.crt",
             cwd=tmp)  # fmt: skip
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-subj", "/CN=my-scheduler", "-keyout", "tls.key", "-out", "client.csr",
             cwd=tmp)  # fmt: skip
    _openssl("x509", "-req", "-in", "client.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "1", "-out", "tls.crt", cwd=tmp)  # fmt: skip
    return {name: tmp / name for name in ("tls.crt", "tls.key", "ca.crt")}


def _render(values: dict[str, Any], tmp_path: Path) -> list[dict[str, Any]]:
    values_file = tmp_path / "values.json"
    # This project's image, as kind loads it (pullPolicy Never: the chart refuses a repository
    # no node could pull otherwise).
    local = {"image": {"pullPolicy": "Never"}}
    base = {"implementation": "neuron-k8s", "devicePlugin": local, "extender": local}
    merged = {**base, **{k: {**base.get(k, {}), **v} for k, v in values.items()}}
    values_file.write_text(json.dumps(merged))
    args = ["-n", "neuron-system", "--kube-version", _binary_version(), "-f", str(values_file)]
    result = subprocess.run(
        ["helm", "template", "neuron", str(CHART), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def _binary() -> str:
    needs_kind()
    binary = shutil.which("kube-scheduler")
    if binary is None:
        pytest.fail(
            "no kube-scheduler on PATH: cluster/harness.py builds it (cluster/.cache/k8s-*/bin)"
        )
    return binary


def _binary_version() -> str:
    out = subprocess.run([_binary(), "--version"], capture_output=True, text=True, check=True)
    return out.stdout.split()[-1]


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"scheduler": {"leaderElection": {"enabled": False}}},
        {"scheduler": {"extenderConfig": {"manageNeuronDevice": True, "ignorable": True}}},
        {"extender": {"tls": {"mode": "disabled"}}},
    ],
    ids=["defaults", "no-leader-election", "neurondevice-ignorable", "plain-http"],
)
def test_real_kube_scheduler_accepts_the_config(tmp_path: Path, values: dict[str, Any]) -> None:
    binary = _binary()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    objs = _render(values, tmp_path)
    (configmap,) = [o for o in objs if o["kind"] == "ConfigMap"]
    (text,) = configmap["data"].values()
    config = yaml.safe_load(text)
    # Only for this offline run: the pod uses its in-cluster account, and mounts its client
    # certificate from the Secret the extender issues in the cluster; here, a CA and a client
    # certificate of openssl's stand in.
    config["clientConnection"] = {"kubeconfig": str(kubeconfig)}
    tls = config["extenders"][0].get("tlsConfig")
    if tls:
        files = _client_certificate(tmp_path)
        for field, key in (("certFile", "tls.crt"), ("keyFile", "tls.key"), ("caFile", "ca.crt")):
            tls[field] = str(files[key])
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [
            binary,
            f"--config={tmp_path / 'config.yaml'}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--authentication-skip-lookup",
            f"--write-config-to={tmp_path / 'out.yaml'}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    written = yaml.safe_load((tmp_path / "out.yaml").read_text())
    assert written["extenders"][0]["urlPrefix"] == config["extenders"][0]["urlPrefix"]
    assert written["profiles"][0]["schedulerName"] == "my-scheduler"
