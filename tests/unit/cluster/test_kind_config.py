"""The kind cluster runs each release's defaults, as a managed cluster does, and the offline
node image's etcd and CoreDNS serve every release."""

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "cluster"))
import harness  # noqa: E402
from versions import VERSIONS  # noqa: E402


def test_the_kind_config_sets_no_feature_gate():
    config = yaml.safe_load((ROOT / "kind-config.yaml").read_text())
    assert "featureGates" not in config
    assert not any(
        "featureGates" in (node.get("kubeadmConfigPatches") or "") for node in config["nodes"]
    )
    assert "feature-gates" not in (ROOT / "kind-config.yaml").read_text()


def test_the_offline_config_gives_kubeadm_the_built_etcd_and_coredns_tags(tmp_path, monkeypatch):
    monkeypatch.setattr(harness, "CACHE", tmp_path)
    written = yaml.safe_load(Path(harness.offline_kind_config()).read_text())
    patches = [yaml.safe_load(p) for p in written["kubeadmConfigPatches"]]
    assert {
        "kind": "ClusterConfiguration",
        "etcd": {"local": {"imageTag": VERSIONS["ETCD_IMAGE_TAG"]}},
        "dns": {"imageTag": VERSIONS["COREDNS_VERSION"]},
    } in patches


def test_the_offline_config_keeps_the_clusters_nodes(tmp_path, monkeypatch):
    monkeypatch.setattr(harness, "CACHE", tmp_path)
    written = yaml.safe_load(Path(harness.offline_kind_config()).read_text())
    assert written["nodes"] == yaml.safe_load((ROOT / "kind-config.yaml").read_text())["nodes"]


def test_a_cgroup_v1_host_lets_the_kubelets_start(tmp_path, monkeypatch):
    monkeypatch.setattr(harness, "CACHE", tmp_path)
    monkeypatch.setattr(harness, "cgroup_v1_host", lambda: True)
    written = yaml.safe_load(Path(harness.offline_kind_config()).read_text())
    patches = [yaml.safe_load(p) for p in written["kubeadmConfigPatches"]]
    assert {"kind": "KubeletConfiguration", "failCgroupV1": False} in patches


def test_a_cgroup_v2_host_keeps_the_kubelets_default(tmp_path, monkeypatch):
    monkeypatch.setattr(harness, "CACHE", tmp_path)
    monkeypatch.setattr(harness, "cgroup_v1_host", lambda: False)
    written = yaml.safe_load(Path(harness.offline_kind_config()).read_text())
    assert "failCgroupV1" not in str(written)


def test_the_cgroup_version_is_read_from_the_hierarchy(tmp_path):
    assert harness.cgroup_v1_host(str(tmp_path))
    (tmp_path / "cgroup.controllers").write_text("cpu memory\n")
    assert not harness.cgroup_v1_host(str(tmp_path))
