"""The offline path's network (cluster/network.py): cluster DNS without an upstream."""

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "cluster"))
spec = importlib.util.spec_from_file_location("network", ROOT / "cluster" / "network.py")
network = importlib.util.module_from_spec(spec)
spec.loader.exec_module(network)

KUBEADM_COREFILE = """.:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30
    loop
    reload
    loadbalance
}
"""


def test_offline_corefile_has_no_upstream_and_no_loop_check() -> None:
    out = network.cluster_zones_only(KUBEADM_COREFILE)
    assert "forward" not in out and "max_concurrent" not in out
    assert "\n    loop\n" not in out


def test_offline_corefile_keeps_the_cluster_zones_and_the_rest() -> None:
    out = network.cluster_zones_only(KUBEADM_COREFILE)
    for kept in ("kubernetes cluster.local", "ttl 30", "cache 30", "reload", "health {"):
        assert kept in out
    assert out.count("{") == out.count("}")


def test_offline_corefile_drops_a_one_line_forward() -> None:
    out = network.cluster_zones_only(".:53 {\n    forward . 8.8.8.8\n    cache 30\n}\n")
    assert out == ".:53 {\n    cache 30\n}\n"
