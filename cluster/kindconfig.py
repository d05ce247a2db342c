"""The kind config each path of the harness creates its cluster from: kind-config.yaml as the
user reads it, plus what this machine and the offline node image need."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from versions import VERSIONS


def cgroup_v1_host(root: str = "/sys/fs/cgroup") -> bool:
    """Whether this machine's containers get cgroup v1 (it has no unified cgroup2 hierarchy)."""
    return not os.path.exists(os.path.join(root, "cgroup.controllers"))


def _patch(config: dict[str, Any], patch: dict[str, Any]) -> None:
    config.setdefault("kubeadmConfigPatches", []).append(yaml.safe_dump(patch, sort_keys=False))


def _for_this_host(config: dict[str, Any], cgroup_v1: bool) -> None:
    """From 1.35 the kubelet refuses to start on a cgroup v1 host unless told it may
    (failCgroupV1, default true). This project's machines are cgroup v1; EKS's AMIs are v2, so
    the chart's behaviour does not depend on it, and the patch is added only where needed."""
    if cgroup_v1:
        print("harness: cgroup v1 host: the kubelets run with failCgroupV1: false", flush=True)
        _patch(config, {"kind": "KubeletConfiguration", "failCgroupV1": False})


def _write(config: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def stock(source: Path, out_dir: Path, cgroup_v1: bool) -> Path:
    """kind-config.yaml with kind's own CNI back on (the offline node image has none)."""
    config = yaml.safe_load(source.read_text())
    config.get("networking", {}).pop("disableDefaultCNI", None)
    _for_this_host(config, cgroup_v1)
    return _write(config, out_dir / "kind-config-stock.yaml")


def offline(source: Path, out_dir: Path, cgroup_v1: bool) -> Path:
    """kind-config.yaml with kubeadm told the tags of the etcd and CoreDNS images the offline
    node image carries: one build of each serves every release (versions.env), while kubeadm's
    defaults differ by release and no registry could supply them."""
    config = yaml.safe_load(source.read_text())
    etcd, dns = VERSIONS["ETCD_IMAGE_TAG"], VERSIONS["COREDNS_VERSION"]
    _patch(
        config,
        {
            "kind": "ClusterConfiguration",
            "etcd": {"local": {"imageTag": etcd}},
            "dns": {"imageTag": dns},
        },
    )
    _for_this_host(config, cgroup_v1)
    return _write(config, out_dir / "kind-config-offline.yaml")
