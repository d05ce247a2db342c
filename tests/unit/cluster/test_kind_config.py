"""The kind cluster runs each release's defaults, as a managed cluster does; the offline node
image's etcd and CoreDNS serve every release; and a cgroup v1 machine still starts kubelets
(cluster/kindconfig.py)."""

import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
SOURCE = ROOT / "kind-config.yaml"
sys.path.insert(0, str(ROOT / "cluster"))
import kindconfig  # noqa: E402
from versions import VERSIONS  # noqa: E402


def patches(path: Path) -> list[dict]:
    return [yaml.safe_load(p) for p in yaml.safe_load(path.read_text())["kubeadmConfigPatches"]]


def test_the_kind_config_sets_no_feature_gate():
    config = yaml.safe_load(SOURCE.read_text())
    assert "featureGates" not in config
    assert "feature-gates" not in SOURCE.read_text()


def test_the_offline_config_gives_kubeadm_the_built_etcd_and_coredns_tags(tmp_path):
    assert {
        "kind": "ClusterConfiguration",
        "etcd": {"local": {"imageTag": VERSIONS["ETCD_IMAGE_TAG"]}},
        "dns": {"imageTag": VERSIONS["COREDNS_VERSION"]},
    } in patches(kindconfig.offline(SOURCE, tmp_path, cgroup_v1=False))


@pytest.mark.parametrize("make", [kindconfig.offline, kindconfig.stock])
def test_each_config_keeps_the_clusters_nodes(tmp_path, make):
    written = yaml.safe_load(make(SOURCE, tmp_path, cgroup_v1=False).read_text())
    assert written["nodes"] == yaml.safe_load(SOURCE.read_text())["nodes"]


def test_the_stock_config_turns_kinds_own_cni_back_on(tmp_path):
    written = yaml.safe_load(kindconfig.stock(SOURCE, tmp_path, cgroup_v1=False).read_text())
    assert "disableDefaultCNI" not in written.get("networking", {})


@pytest.mark.parametrize("make", [kindconfig.offline, kindconfig.stock])
def test_a_cgroup_v1_host_lets_the_kubelets_start(tmp_path, make):
    wanted = {"kind": "KubeletConfiguration", "failCgroupV1": False}
    assert wanted in patches(make(SOURCE, tmp_path, cgroup_v1=True))


def test_a_cgroup_v2_host_keeps_the_kubelets_default(tmp_path):
    assert "failCgroupV1" not in kindconfig.offline(SOURCE, tmp_path, cgroup_v1=False).read_text()


def test_the_cgroup_version_is_read_from_the_hierarchy(tmp_path):
    assert kindconfig.cgroup_v1_host(str(tmp_path))
    (tmp_path / "cgroup.controllers").write_text("cpu memory\n")
    assert not kindconfig.cgroup_v1_host(str(tmp_path))
