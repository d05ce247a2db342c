#!/usr/bin/env python3
"""The kind harness: from a fresh clone to a kind cluster running the chart in fake-device
mode, with no container registry, and the e2e suite against it.

    harness.py up       build what is missing, create (or reuse) the cluster, install the chart
    harness.py test     run tests/e2e against the cluster (extra arguments go to pytest)
    harness.py down     delete the cluster
    harness.py e2e      up, test, down (NEURON_E2E_KEEP=1 keeps the cluster), with timings
    harness.py demo     up, then show allocatable cores and a sample pod's cores; keeps it up

Environment: NEURON_E2E_REUSE=1 reuses a running cluster of the same name;
NEURON_E2E_KUBECONFIG=<path> runs `test`/`e2e` against an existing cluster instead (an EKS
cluster with real Neuron nodes, say): nothing is built, created or deleted there.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CACHE = HERE / ".cache"
IMAGES = CACHE / "images"
KUBECONFIG = CACHE / "kubeconfig"
SID_DIR = Path(os.environ.get("NEURON_SID_DIR", "/opt/neuron-sid"))
CLUSTER = "neuron"
NAMESPACE = "neuron"
RELEASE = "neuron"
K8S_VERSION = next(
    line.split()[-1]
    for line in (HERE / "k8s" / "go.mod").read_text().splitlines()
    if line.startswith("require k8s.io/kubernetes ")
)
NODE_IMAGE = f"neuron-k8s/kind-node:{K8S_VERSION}"
KIND_VALUES = ROOT / "charts" / "neuron" / "examples" / "kind.yaml"


def env() -> dict[str, str]:
    e = dict(os.environ)
    path = [
        str(SID_DIR / "root/usr/sbin"),
        str(SID_DIR / "root/usr/bin"),
        str(CACHE / "bin"),
        str(ROOT / ".tools/bin"),
        e.get("PATH", ""),
    ]
    e["PATH"] = os.pathsep.join(path)
    e["KUBECONFIG"] = str(KUBECONFIG)
    return e


def run(
    cmd: list[str] | str, check: bool = True, capture: bool = False, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    shown = cmd if isinstance(cmd, str) else shlex.join(cmd)
    print(f"+ {shown}", flush=True)
    return subprocess.run(
        cmd,
        shell=isinstance(cmd, str),
        check=check,
        text=True,
        env=env(),
        capture_output=capture,
        input=input,
    )


def out(cmd: list[str]) -> str:
    return subprocess.run(cmd, check=True, text=True, env=env(), capture_output=True).stdout


class Timer:
    """Records where the time went, phase by phase."""

    def __init__(self) -> None:
        self.phases: list[tuple[str, float]] = []

    def phase(self, name: str, fn, *args) -> None:
        start = time.monotonic()
        print(f"==> {name}", flush=True)
        try:
            fn(*args)
        finally:
            self.phases.append((name, time.monotonic() - start))

    def report(self) -> None:
        total = sum(s for _, s in self.phases)
        print("\nwhere the time went:")
        for name, secs in self.phases:
            print(f"  {name:<10} {secs:7.1f} s")
        print(f"  {'total':<10} {total:7.1f} s", flush=True)


# --- phases -------------------------------------------------------------------------------
def host() -> None:
    run(["bash", str(ROOT / "scripts/install-tools.sh")])
    run(["bash", str(HERE / "setup-host.sh")])


def binaries() -> None:
    run(["bash", str(HERE / "build-binaries.sh")])
    # Terraform and the kubectl provider, for tests/e2e/test_95_terraform.py.
    run(["bash", str(HERE / "build-terraform.sh")])


def images() -> None:
    run(["bash", str(HERE / "build-images.sh")])
    # docker load only when the node image changed since the last load.
    stamp = (IMAGES / "kind-node.tar.stamp").read_text().strip()
    loaded = IMAGES / "kind-node.tar.loaded"
    have = run(["docker", "image", "inspect", NODE_IMAGE], check=False, capture=True)
    if have.returncode != 0 or not loaded.exists() or loaded.read_text().strip() != stamp:
        run(["docker", "load", "-q", "-i", str(IMAGES / "kind-node.tar")])
        loaded.write_text(stamp + "\n")


def cluster_exists() -> bool:
    return CLUSTER in out(["kind", "get", "clusters"]).split()


def cluster() -> None:
    if os.environ.get("NEURON_E2E_REUSE") == "1" and cluster_exists():
        print(f"reusing kind cluster {CLUSTER}")
        run(["kind", "export", "kubeconfig", "--name", CLUSTER, "--kubeconfig", str(KUBECONFIG)])
        return
    if cluster_exists():
        run(["kind", "delete", "cluster", "--name", CLUSTER])
    run(
        [
            "kind",
            "create",
            "cluster",
            "--name",
            CLUSTER,
            "--config",
            str(ROOT / "kind-config.yaml"),
            "--image",
            NODE_IMAGE,
            "--kubeconfig",
            str(KUBECONFIG),
            "--retain",
        ]
    )


def node_containers() -> list[str]:
    return out(["kind", "get", "nodes", "--name", CLUSTER]).split()


def network() -> None:
    """A bridge per node on its pod CIDR, and routes to every other node's pod CIDR: what
    kind's default CNI would do, with Debian's CNI plugins and no image."""
    deadline = time.monotonic() + 120
    while True:
        nodes = json.loads(out(["kubectl", "get", "nodes", "-o", "json"]))["items"]
        if len(nodes) == len(node_containers()) and all(n["spec"].get("podCIDR") for n in nodes):
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


def load() -> None:
    run(["kind", "load", "image-archive", str(IMAGES / "neuron-k8s.tar"), "--name", CLUSTER])


def install() -> None:
    # The image tag stays the same across rebuilds; an annotation with the image's build stamp
    # rolls the pods when a reused cluster gets a new build.
    stamp = (IMAGES / "neuron-k8s.tar.stamp").read_text().strip()
    roll = [
        f"--set-string={c}.podAnnotations.neuron-k8s/build={stamp}"
        for c in ("devicePlugin", "extender")
    ]
    chart = str(ROOT / "charts/neuron")
    run(
        [
            "helm",
            "upgrade",
            "--install",
            RELEASE,
            chart,
            "--namespace",
            NAMESPACE,
            "--create-namespace",
            "-f",
            str(KIND_VALUES),
            *roll,
            "--wait",
            "--timeout",
            "5m",
        ]
    )
    run(["kubectl", "get", "pods", "-n", NAMESPACE, "-o", "wide"])
    wait_for_neuron_capacity()


def tests(extra: list[str]) -> None:
    e = env()
    kubeconfig = os.environ.get("NEURON_E2E_KUBECONFIG")
    if kubeconfig:
        e["KUBECONFIG"] = kubeconfig
    else:
        e["NEURON_E2E_KIND_CLUSTER"] = CLUSTER
        e["NEURON_E2E_NAMESPACE"] = NAMESPACE
        e["NEURON_E2E_RELEASE"] = RELEASE
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        str(ROOT / "tests/e2e"),
        "--kubeconfig",
        e["KUBECONFIG"],
        *extra,
    ]
    print(f"+ {shlex.join(cmd)}", flush=True)
    subprocess.run(cmd, check=True, env=e, cwd=ROOT)


def down() -> None:
    if cluster_exists():
        run(["kind", "delete", "cluster", "--name", CLUSTER])


def up(timer: Timer) -> None:
    timer.phase("host", host)
    timer.phase("binaries", binaries)
    timer.phase("images", images)
    timer.phase("cluster", cluster)
    timer.phase("network", network)
    timer.phase("load", load)
    timer.phase("install", install)


def demo() -> None:
    kc = f"KUBECONFIG={KUBECONFIG}"
    wait_for_neuron_capacity()
    run(
        [
            "kubectl",
            "get",
            "nodes",
            r"-o=custom-columns=NAME:.metadata.name,"
            r"TYPE:.metadata.labels.node\.kubernetes\.io/instance-type,"
            r"NeuronDevice:.status.allocatable.aws\.amazon\.com/neuron,"
            r"NeuronCore:.status.allocatable.aws\.amazon\.com/neuroncore",
        ]
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "neuron-demo", "namespace": "default"},
        "spec": {
            "schedulerName": "my-scheduler",
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "app",
                    "image": f"neuron-k8s:{_app_version()}",
                    "imagePullPolicy": "Never",
                    "command": [
                        "sh",
                        "-c",
                        'echo "NEURON_RT_VISIBLE_CORES=$NEURON_RT_VISIBLE_CORES"',
                    ],
                    "resources": {"limits": {"aws.amazon.com/neuroncore": "2"}},
                }
            ],
        },
    }
    run(["kubectl", "delete", "pod", "neuron-demo", "--ignore-not-found", "--wait"])
    run(["kubectl", "apply", "-f", "-"], input=json.dumps(pod))
    run(
        [
            "kubectl",
            "wait",
            "--for=jsonpath={.status.phase}=Succeeded",
            "pod/neuron-demo",
            "--timeout=120s",
        ]
    )
    run(["kubectl", "logs", "neuron-demo"])
    run(
        [
            "kubectl",
            "get",
            "pod",
            "neuron-demo",
            "-o",
            "jsonpath={.spec.nodeName}: {.metadata.annotations.AWS_NEURON_IDS}{'\\n'}",
        ]
    )
    print(f"""
The cluster stays up. Explore it:
  export {kc} PATH={SID_DIR}/root/usr/bin:{CACHE}/bin:{ROOT}/.tools/bin:$PATH
  kubectl get pods -A
  helm status {RELEASE} -n {NAMESPACE}
Delete it:
  python3 cluster/harness.py down
""")


def wait_for_neuron_capacity(timeout: float = 120) -> None:
    """Until every node with a Neuron instance-type label advertises cores: the plugin has
    registered and the kubelet has posted its node status."""
    deadline = time.monotonic() + timeout
    while True:
        nodes = json.loads(out(["kubectl", "get", "nodes", "-o", "json"]))["items"]
        labelled = [
            n for n in nodes if "node.kubernetes.io/instance-type" in n["metadata"]["labels"]
        ]
        if labelled and all(
            int(n["status"].get("allocatable", {}).get("aws.amazon.com/neuroncore", "0")) > 0
            for n in labelled
        ):
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"demo: no Neuron capacity on the labelled nodes after {timeout} s")
        time.sleep(2)


def dump_components(tail: int = 400) -> None:
    """After failed tests, before the cluster goes: the components' logs and the cluster's
    warnings, so that a failure in CI can be understood from its output alone."""
    print("==> component logs (the tests failed)", flush=True)
    names = run(["kubectl", "-n", NAMESPACE, "get", "pods", "-o", "name"], False, True).stdout
    for pod in names.split():
        run(["kubectl", "-n", NAMESPACE, "logs", pod, "--all-containers", f"--tail={tail}"], False)
    run(["kubectl", "get", "events", "-A", "--field-selector=type=Warning"], False)


def _app_version() -> str:
    for line in (ROOT / "plugin-src/pyproject.toml").read_text().splitlines():
        if line.startswith("version = "):
            return line.split('"')[1]
    raise SystemExit("no version in plugin-src/pyproject.toml")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("command", choices=["up", "test", "down", "e2e", "demo"])
    p.add_argument("pytest_args", nargs=argparse.REMAINDER)
    args = p.parse_args()
    timer = Timer()
    existing = os.environ.get("NEURON_E2E_KUBECONFIG")
    try:
        if args.command == "up":
            up(timer)
        elif args.command == "test":
            timer.phase("tests", tests, args.pytest_args)
        elif args.command == "down":
            timer.phase("delete", down)
        elif args.command == "demo":
            up(timer)
            timer.phase("demo", demo)
        elif args.command == "e2e":
            if not existing:
                up(timer)
            try:
                timer.phase("tests", tests, args.pytest_args)
            except subprocess.CalledProcessError:
                dump_components()
                raise
            finally:
                if not existing and os.environ.get("NEURON_E2E_KEEP") != "1":
                    timer.phase("delete", down)
    except subprocess.CalledProcessError as err:
        print(f"harness: {args.command} failed: {err}", file=sys.stderr)
        return err.returncode or 1
    finally:
        timer.report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
