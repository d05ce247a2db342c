"""The harness's stock kind path (cluster/harness.py with paths.py), against stand-in `docker`,
`kind` and `kubectl` executables on PATH that record their calls. The offline path is what CI
runs for real."""

import json
import os
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "cluster"))
import harness  # noqa: E402
import shell  # noqa: E402

STANDIN = """#!/usr/bin/env python3
import json, os, sys
name, args = os.path.basename(sys.argv[0]), sys.argv[1:]
with open(os.environ["STANDIN_LOG"], "a") as log:
    log.write(json.dumps([name, *args]) + "\\n")
def answer(key):
    sys.exit(0 if os.environ.get(key) == "1" else 1)
if name == "docker" and args[:1] == ["info"]:
    answer("STANDIN_DOCKER")
if name == "docker" and args[:2] == ["image", "inspect"]:
    if "-f" in args:
        print("sha256:0123456789abcdef0123")
        sys.exit(0)
    answer("STANDIN_IMAGE_PRESENT" if args[-1].startswith("kindest/") else "STANDIN_APP_PRESENT")
if name == "docker" and args[:1] == ["pull"]:
    answer("STANDIN_PULL")
sys.exit(0)
"""


@pytest.fixture
def standins(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("docker", "kind", "kubectl"):
        exe = bin_dir / name
        exe.write_text(STANDIN)
        exe.chmod(0o755)
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("STANDIN_LOG", str(log))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("NEURON_E2E_OFFLINE", raising=False)
    monkeypatch.delenv("NEURON_E2E_REUSE", raising=False)
    # The project's own tools would come first on the harness's PATH: point it elsewhere.
    cache = tmp_path / "cache"
    for module in (shell, harness):
        monkeypatch.setattr(module, "CACHE", cache)
        monkeypatch.setattr(module, "KUBECONFIG", cache / "kubeconfig")
    monkeypatch.setattr(shell, "SID_DIR", tmp_path / "no-sid")
    monkeypatch.setattr(shell, "ROOT", tmp_path / "no-root")
    monkeypatch.setattr(harness, "IMAGES", cache / "images")
    harness.way.cache_clear()
    yield lambda: [json.loads(line) for line in log.read_text().splitlines()]
    harness.way.cache_clear()


def machine(monkeypatch, docker=True, present=False, pull=False):
    for key, on in (("DOCKER", docker), ("IMAGE_PRESENT", present), ("PULL", pull)):
        monkeypatch.setenv(f"STANDIN_{key}", "1" if on else "0")


def test_a_present_node_image_takes_the_stock_path_and_says_so(standins, monkeypatch, capsys):
    machine(monkeypatch, present=True)
    assert harness.way().stock
    assert f"harness: Kubernetes {harness.K8S_VERSION}, stock kind" in capsys.readouterr().out
    assert ["docker", "pull", "-q", harness.STOCK_NODE_IMAGE] not in standins()


def test_the_stock_path_builds_neuron_k8s_with_docker_build(standins, monkeypatch, capsys):
    machine(monkeypatch, present=True)
    harness.images()
    image = harness.app_image()
    assert ["docker", "build", "-q", "-t", image, str(ROOT / "plugin-src")] in standins()
    assert "build-images.sh" not in capsys.readouterr().out


def test_the_stock_path_creates_kind_with_its_node_image_and_cni(standins, monkeypatch):
    machine(monkeypatch, pull=True)
    harness.cluster()
    (create,) = [c for c in standins() if c[:3] == ["kind", "create", "cluster"]]
    assert create[create.index("--image") + 1] == harness.STOCK_NODE_IMAGE
    config = yaml.safe_load(Path(create[create.index("--config") + 1]).read_text())
    ours = yaml.safe_load((ROOT / "kind-config.yaml").read_text())
    assert "disableDefaultCNI" not in config.get("networking", {})
    assert config["nodes"] == ours["nodes"]


def test_the_stock_path_waits_for_kinds_cni_instead_of_wiring_a_bridge(standins, monkeypatch):
    machine(monkeypatch, present=True)
    harness.network()
    calls = standins()
    assert ["kubectl", "wait", "--for=condition=Ready", "nodes", "--all", "--timeout=180s"] in calls
    assert not [c for c in calls if c[:2] == ["docker", "exec"]]


def test_the_stock_path_loads_the_docker_image_into_kind(standins, monkeypatch):
    machine(monkeypatch, present=True)
    harness.load()
    loads = [c for c in standins() if c[:2] == ["kind", "load"]]
    assert loads == [["kind", "load", "docker-image", harness.app_image(), "--name", "neuron"]]


def test_the_stock_build_stamp_is_the_images_id(standins, monkeypatch):
    machine(monkeypatch, present=True)
    assert harness.build_stamp() == "sha256:0123456789abcdef0123"


def test_the_node_image_is_pulled_at_most_once_per_run(standins, monkeypatch):
    machine(monkeypatch, pull=True)
    harness.images()
    harness.cluster()
    harness.load()
    pulls = [c for c in standins() if c[:2] == ["docker", "pull"]]
    assert pulls == [["docker", "pull", "-q", harness.STOCK_NODE_IMAGE]]


def test_neuron_e2e_offline_asks_no_registry(standins, monkeypatch, capsys):
    machine(monkeypatch, present=True, pull=True)
    monkeypatch.setenv("NEURON_E2E_OFFLINE", "1")
    assert not harness.way().stock
    assert f"harness: Kubernetes {harness.K8S_VERSION}, offline build" in capsys.readouterr().out
    assert [c for c in standins() if c[:2] == ["docker", "pull"]] == []


def test_a_node_image_no_one_serves_takes_the_offline_path(standins, monkeypatch):
    machine(monkeypatch, present=False, pull=False)
    assert not harness.way().stock
