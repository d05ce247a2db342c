#!/usr/bin/env python3
"""The kind harness: from a fresh clone to a kind cluster running the chart in real mode over
an imitation of the Neuron driver (neurondriver.py), with no container registry, and the e2e
suite against it.

    harness.py up       build what is missing, create (or reuse) the cluster, install the chart
    harness.py test     run tests/e2e against the cluster (extra arguments go to pytest)
    harness.py down     delete the cluster
    harness.py e2e      up, test, down (NEURON_E2E_KEEP=1 keeps the cluster), with timings
    harness.py demo     up, then show allocatable cores and a sample pod's cores; keeps it up

Two ways up (paths.py), printed at the start: on a machine whose Docker answers and can get
the stock kind node image, stock kind (its CNI, `docker build plugin-src`); otherwise the
offline build of cluster/ (no registry needed). NEURON_E2E_OFFLINE=1 forces the offline build.

Environment: NEURON_E2E_K8S_RELEASE=oldest builds and runs the oldest Kubernetes release the
chart supports instead of the current one (versions.env; CI's second, smaller run);
NEURON_E2E_REUSE=1 reuses a running cluster of the same name;
NEURON_E2E_KUBECONFIG=<path> runs `test`/`e2e` against an existing cluster instead (an EKS
cluster with real Neuron nodes, say): nothing is built, created or deleted there.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import diskspace
import kindconfig
import neurondriver
from network import network as bridge_network
from paths import Probes, Way, choose
from shell import CACHE, HERE, KUBECONFIG, ROOT, SID_DIR, env, out, run, succeeds
from versions import kubernetes_version, release_cache

IMAGES = CACHE / "images"
CLUSTER = "neuron"
NAMESPACE = "neuron"
RELEASE = "neuron"
# kind-config.yaml labels the worker that runs the DRA driver instead of the device plugin.
DRA_LABEL = "neuron.k8s.local/dra"
K8S_VERSION = kubernetes_version()
K8S_IMAGES = release_cache(K8S_VERSION) / "images"  # its node image and control plane
OFFLINE_NODE_IMAGE = f"neuron-k8s/kind-node:{K8S_VERSION}"
STOCK_NODE_IMAGE = f"kindest/node:{K8S_VERSION}"
KIND_CONFIG = ROOT / "kind-config.yaml"
KIND_VALUES = ROOT / "charts" / "neuron" / "examples" / "kind.yaml"
# Real mode over the driver imitation (neurondriver.py) on every worker; the e2e runs it.
REAL_MODE_VALUES = ROOT / "charts" / "neuron" / "examples" / "kind-real-mode.yaml"


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


@functools.cache
def way() -> Way:
    """The path this run takes (paths.py), chosen once and printed."""
    probes = Probes(
        docker_answers=lambda: succeeds(["docker", "info"]),
        image_present=lambda image: succeeds(["docker", "image", "inspect", image]),
        image_pulled=lambda image: succeeds(["docker", "pull", "-q", image]),
    )
    chosen = choose(probes, STOCK_NODE_IMAGE, os.environ.get("NEURON_E2E_OFFLINE") == "1")
    print(f"harness: Kubernetes {K8S_VERSION}, {chosen.describe(STOCK_NODE_IMAGE)}", flush=True)
    return chosen


def app_image() -> str:
    return f"neuron-k8s:{_app_version()}"


# --- phases -------------------------------------------------------------------------------
def host() -> None:
    run(["bash", str(ROOT / "scripts/install-tools.sh")])
    if not way().stock:
        run(["bash", str(HERE / "setup-host.sh")])
    root = out(["docker", "info", "-f", "{{.DockerRootDir}}"]).strip()
    problems = diskspace.check([CACHE if CACHE.exists() else ROOT, *([Path(root)] if root else [])])
    if problems:
        raise SystemExit("harness: " + "\n".join(problems))


def binaries() -> None:
    if way().stock:
        # kind itself, and kube-scheduler for tests/e2e/test_08_scheduler_config.py.
        run(["bash", str(HERE / "build-binaries.sh")], env_extra={"STOCK": "1"})
    else:
        run(["bash", str(HERE / "build-binaries.sh")])
    # Terraform and the kubectl provider, for tests/e2e/test_95_terraform.py.
    run(["bash", str(HERE / "build-terraform.sh")])
    # Prometheus, for tests/e2e/test_31_metrics_prometheus.py.
    run(["bash", str(ROOT / "scripts/build-prometheus.sh")])


def images() -> None:
    if way().stock:
        run(["docker", "build", "-q", "-t", app_image(), str(ROOT / "plugin-src")])
        return
    run(["bash", str(HERE / "build-images.sh")])
    # docker load only when the node image changed since the last load.
    stamp = (K8S_IMAGES / "kind-node.tar.stamp").read_text().strip()
    loaded = K8S_IMAGES / "kind-node.tar.loaded"
    inspect = ["docker", "image", "inspect", "-f", "{{.Id}}", OFFLINE_NODE_IMAGE]
    have = run(inspect, check=False, capture=True)
    if have.returncode != 0 or not loaded.exists() or loaded.read_text().strip() != stamp:
        run(["docker", "load", "-q", "-i", str(K8S_IMAGES / "kind-node.tar")])
        loaded.write_text(stamp + "\n")
        # The load leaves the image it replaced untagged: 1.1 GiB per fresh clone, until the
        # disk is full (CI on 2c030de). Remove it unless a container still uses it.
        old = have.stdout.strip()
        if have.returncode == 0 and old and old != out(inspect).strip():
            run(["docker", "image", "rm", old], check=False)


def cluster_exists() -> bool:
    return CLUSTER in out(["kind", "get", "clusters"]).split()


def cluster() -> None:
    if os.environ.get("NEURON_E2E_REUSE") == "1" and cluster_exists():
        print(f"reusing kind cluster {CLUSTER}")
        run(["kind", "export", "kubeconfig", "--name", CLUSTER, "--kubeconfig", str(KUBECONFIG)])
        return
    if cluster_exists():
        run(["kind", "delete", "cluster", "--name", CLUSTER])
    cgroup_v1 = kindconfig.cgroup_v1_host()
    if way().stock:
        config, image = kindconfig.stock(KIND_CONFIG, CACHE, cgroup_v1), STOCK_NODE_IMAGE
    else:
        config, image = kindconfig.offline(KIND_CONFIG, CACHE, cgroup_v1), OFFLINE_NODE_IMAGE
    create = ["kind", "create", "cluster", "--name", CLUSTER, "--config", str(config)]
    run([*create, "--image", image, "--kubeconfig", str(KUBECONFIG), "--retain"])


def network() -> None:
    if way().stock:
        run(["kubectl", "wait", "--for=condition=Ready", "nodes", "--all", "--timeout=180s"])
    else:
        bridge_network(CLUSTER)


def load() -> None:
    if way().stock:
        run(["kind", "load", "docker-image", app_image(), "--name", CLUSTER])
    else:
        run(["kind", "load", "image-archive", str(IMAGES / "neuron-k8s.tar"), "--name", CLUSTER])


def driver() -> None:
    """Every labelled worker gets the Neuron driver's footprint, as a fresh boot leaves it."""
    neurondriver.plant(kubeconfig=str(KUBECONFIG))


def build_stamp() -> str:
    """Changes with every build of the neuron-k8s image (its tag does not)."""
    if way().stock:
        return out(["docker", "image", "inspect", "-f", "{{.Id}}", app_image()]).strip()
    return (IMAGES / "neuron-k8s.tar.stamp").read_text().strip()


def install() -> None:
    # The image tag stays the same across rebuilds; an annotation with the image's build stamp
    # rolls the pods when a reused cluster gets a new build.
    stamp = build_stamp().replace("sha256:", "")[:16]
    roll = [
        f"--set-string={c}.podAnnotations.neuron-k8s/build={stamp}"
        for c in ("devicePlugin", "extender", "dra")
    ]
    chart = str(ROOT / "charts/neuron")
    release = [RELEASE, chart, "--namespace", NAMESPACE, "--create-namespace"]
    values = ["-f", str(KIND_VALUES), "-f", str(REAL_MODE_VALUES)]
    run(["helm", "upgrade", "--install", *release, *values, *roll, "--wait"])
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
    cmd = [sys.executable, "-m", "pytest", str(ROOT / "tests/e2e"), "--kubeconfig", e["KUBECONFIG"]]
    cmd += extra
    print(f"+ {' '.join(cmd)}", flush=True)
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
    timer.phase("driver", driver)
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
    # The fleet as `kubectl neuron` shows it (docs/kubectl-neuron.md), from the source tree.
    src = {"PYTHONPATH": str(ROOT / "plugin-src" / "src")}
    run([sys.executable, "-m", "neuron_k8s.fleet.cli", "nodes"], env_extra=src)
    print(f"""
The cluster stays up. Explore it:
  export {kc} PATH={SID_DIR}/root/usr/bin:{CACHE}/bin:{ROOT}/.tools/bin:$PATH
  kubectl get pods -A
  helm status {RELEASE} -n {NAMESPACE}
Delete it:
  python3 cluster/harness.py down
""")


def wait_for_neuron_capacity(timeout: float = 120) -> None:
    """Until every node with a Neuron instance-type label advertises cores (the plugin has
    registered and the kubelet has posted its node status), and every node labelled for the
    DRA driver has its ResourceSlices."""
    deadline = time.monotonic() + timeout
    while True:
        nodes = json.loads(out(["kubectl", "get", "nodes", "-o", "json"]))["items"]
        labelled = [
            n for n in nodes if "node.kubernetes.io/instance-type" in n["metadata"]["labels"]
        ]
        dra = {n["metadata"]["name"] for n in labelled if n["metadata"]["labels"].get(DRA_LABEL)}
        sliced = {
            s["spec"].get("nodeName")
            for s in json.loads(out(["kubectl", "get", "resourceslices", "-o", "json"]))["items"]
        }
        if (
            labelled
            and dra <= sliced
            and all(
                int(n["status"].get("allocatable", {}).get("aws.amazon.com/neuroncore", "0")) > 0
                for n in labelled
                if n["metadata"]["name"] not in dra
            )
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
