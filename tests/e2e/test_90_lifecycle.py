"""helm upgrade rolls out, helm test passes, helm uninstall leaves nothing of ours behind.
Runs after every module that needs the release: it uninstalls it (test_95_terraform then
brings up AWS-shaped objects of its own)."""

from pathlib import Path

from conftest import (
    DRA_NODE_LABEL,
    NAMESPACE,
    RELEASE,
    Cluster,
    needs_kind,
    plugin_sockets,
    wait_for,
)

CHART = str(Path(__file__).resolve().parents[2] / "charts" / "neuron")
UNHEALTHY_ANNOTATION = "neuron.k8s.local/unhealthy-devices"
DRA_REGISTRY_DIR = "/var/lib/kubelet/plugins_registry"

INSTANCE = f"app.kubernetes.io/instance={RELEASE}"


def test_helm_upgrade_with_changed_values_rolls_out(cluster: Cluster) -> None:
    needs_kind()
    cluster.helm(
        "upgrade",
        RELEASE,
        CHART,
        "-n",
        NAMESPACE,
        "--reuse-values",
        "--set",
        "extender.podAnnotations.e2e-revision=two",
        "--wait",
        "--timeout",
        "3m",
    )

    def rolled() -> bool:
        pods = cluster.core.list_namespaced_pod(
            NAMESPACE, label_selector="app.kubernetes.io/component=extender"
        ).items
        return bool(pods) and all(
            (p.metadata.annotations or {}).get("e2e-revision") == "two"
            and p.status.phase == "Running"
            for p in pods
        )

    wait_for("the extender to roll out with the new annotation", rolled, 120)


def test_helm_test_passes(cluster: Cluster) -> None:
    needs_kind()
    result = cluster.helm(
        "test", RELEASE, "-n", NAMESPACE, "--logs", "--timeout", "3m", check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_helm_uninstall_leaves_nothing_of_ours_behind(cluster: Cluster, node_host) -> None:
    nodes = list(cluster.neuron_nodes())
    cluster.helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait", "--timeout", "3m")

    def leftovers() -> list[str]:
        out = cluster.kubectl(
            "get",
            "all,configmaps,serviceaccounts,roles,rolebindings,clusterroles,"
            "clusterrolebindings,leases",
            "-A",
            "-l",
            INSTANCE,
            "-o",
            "name",
        ).stdout
        return out.split()

    wait_for("no object of the release left", lambda: not leftovers(), 120)
    # The extender's certificate Secrets (TLS mode chart) are not Helm's: my-scheduler's
    # Deployment owns them, and the garbage collector deletes them with it.
    issued = {f"{RELEASE}-extender-tls-ca", f"{RELEASE}-scheduler-client-cert"}

    def secrets_left() -> set[str]:
        names = cluster.kubectl("get", "secrets", "-n", NAMESPACE, "-o", "name").stdout.split()
        return issued & {n.removeprefix("secret/") for n in names}

    wait_for("the issued certificate Secrets deleted", lambda: not secrets_left(), 120)
    for node in nodes:
        host = node_host(node)
        wait_for(
            f"plugin sockets removed on {node}",
            lambda h=host: not any(plugin_sockets(h).values()),
            60,
        )
        annotations = cluster.core.read_node(node).metadata.annotations or {}
        assert UNHEALTHY_ANNOTATION not in annotations, f"{node} keeps {UNHEALTHY_ANNOTATION}"
    dra_nodes = cluster.core.list_node(label_selector=f"{DRA_NODE_LABEL}=true").items
    for node in dra_nodes:
        name = node.metadata.name
        host = node_host(name)

        def slices(node: str = name) -> list[str]:
            out = cluster.kubectl(
                "get", "resourceslices", f"--field-selector=spec.nodeName={node}", "-o", "name"
            )
            return out.stdout.split()

        wait_for(f"the DRA driver's slices of {name} deleted", lambda: not slices(), 60)
        wait_for(
            f"the DRA driver's registration socket removed on {name}",
            lambda h=host: not h.run(f"ls {DRA_REGISTRY_DIR} | grep -q neuron.aws.com").succeeded,
            60,
        )
    classes = cluster.kubectl("get", "deviceclasses", "-o", "name").stdout.split()
    assert not [c for c in classes if c.endswith(("/neuron.aws.com", "/neuroncore.aws.com"))], (
        classes
    )
