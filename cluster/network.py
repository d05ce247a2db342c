"""The offline path's cluster network: kind's default CNI (kindnet) and CoreDNS's upstream
need what this machine lacks (a registry, the outside world), so each node gets a bridge on its
pod CIDR with routes to the others, and cluster DNS serves the cluster zones only."""

from __future__ import annotations

import json
import time

from shell import out, run


def node_containers(cluster: str) -> list[str]:
    return out(["kind", "get", "nodes", "--name", cluster]).split()


def network(cluster: str) -> None:
    """A bridge per node on its pod CIDR, and routes to every other node's pod CIDR: what
    kind's default CNI would do, with Debian's CNI plugins and no image."""
    deadline = time.monotonic() + 120
    while True:
        nodes = json.loads(out(["kubectl", "get", "nodes", "-o", "json"]))["items"]
        if len(nodes) == len(node_containers(cluster)) and all(
            n["spec"].get("podCIDR") for n in nodes
        ):
            break
        if time.monotonic() > deadline:
            raise SystemExit("network: nodes did not get pod CIDRs within 120 s")
        time.sleep(1)
    addr = {
        n["metadata"]["name"]: next(
            a["address"] for a in n["status"]["addresses"] if a["type"] == "InternalIP"
        )
        for n in nodes
    }
    cidr = {n["metadata"]["name"]: n["spec"]["podCIDR"] for n in nodes}
    for name in addr:
        conf = {
            "cniVersion": "1.0.0",
            "name": "neuron-bridge",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": "cni0",
                    "isGateway": True,
                    "ipMasq": True,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": cidr[name]}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        }
        routes = "".join(f"ip route replace {cidr[o]} via {addr[o]}\n" for o in addr if o != name)
        script = (
            "set -e\nsysctl -qw net.ipv4.ip_forward=1\n"
            "sysctl -qw net.bridge.bridge-nf-call-iptables=1 || true\n"
            f"{routes}"
            "mkdir -p /etc/cni/net.d\n"
            "cat > /etc/cni/net.d/10-neuron-bridge.conflist <<'EOF'\n"
            f"{json.dumps(conf, indent=1)}\nEOF\n"
        )
        run(["docker", "exec", "-i", name, "bash", "-s"], input=script)
    run(["kubectl", "wait", "--for=condition=Ready", "nodes", "--all", "--timeout=180s"])
    offline_dns()


def cluster_zones_only(corefile: str) -> str:
    """The Corefile without its upstream: no `forward` block and no `loop` check."""
    lines, skip = [], False
    for line in corefile.splitlines():
        stripped = line.strip()
        if stripped.startswith("forward "):
            skip = stripped.endswith("{")
            continue
        if skip:
            skip = stripped != "}"
            continue
        if stripped == "loop":
            continue
        lines.append(line)
    return "\n".join(lines) + "\n"


def offline_dns() -> None:
    """Cluster DNS without an upstream: the nodes' resolver is Docker's 127.0.0.11, which from a
    pod is the pod's own loopback, so CoreDNS would forward to itself (its loop check stops it).
    There is no outside world to resolve here: serve the cluster zones only."""
    cm = json.loads(
        out(["kubectl", "get", "configmap", "coredns", "-n", "kube-system", "-o", "json"])
    )
    corefile = cluster_zones_only(cm["data"]["Corefile"])
    patch = {"data": {"Corefile": corefile}}
    run(
        [
            "kubectl",
            "patch",
            "configmap",
            "coredns",
            "-n",
            "kube-system",
            "--type",
            "merge",
            "-p",
            json.dumps(patch),
        ]
    )
    run(["kubectl", "rollout", "restart", "deployment/coredns", "-n", "kube-system"])
    run(
        [
            "kubectl",
            "rollout",
            "status",
            "deployment/coredns",
            "-n",
            "kube-system",
            "--timeout=120s",
        ]
    )
