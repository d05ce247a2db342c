"""With `implementation: aws` (the default) the chart runs AWS's images as AWS's chart 1.10 does:
the render's scheduler configuration, containers, pod placement, security contexts and RBAC equal
the golden aws_chart_1_10.yaml field by field, except the differences listed below, each a choice
with its reason (docs/migration.md, "Differences from AWS's chart"). A difference that disappears
must leave the list too, so the list is always the whole truth."""

from pathlib import Path
from typing import Any

import pytest
import yaml
from chartlib import objects_of, pod_spec, render, scheduler_config, workload

GOLDEN = yaml.safe_load((Path(__file__).parent / "aws_chart_1_10.yaml").read_text())

# AWS's object names, so that names in URLs and paths compare; everything else is the default.
NAMES = {
    "extender": {"fullnameOverride": "k8s-neuron-scheduler"},
    "scheduler": {"fullnameOverride": "my-scheduler"},
}

# path in the golden -> why the chart renders it otherwise.
DIFFERENCES = {
    # Scheduler configuration.
    "schedulerConfig.extender.httpTimeout": (
        "10s instead of kube-scheduler's 5 s default: a bind writes annotations and a Binding"
    ),
    # Device plugin.
    "devicePlugin.pod.securityContext": (
        "runAsUser/runAsGroup 0 (what AWS's plugin runs as) made explicit, and seccomp "
        "RuntimeDefault: a device plugin serves gRPC on a unix socket, no unusual syscall"
    ),
    "devicePlugin.pod.tolerations": (
        "every taint (operator Exists), a superset of AWS's three: a node group's own taints "
        "never keep a Neuron node's devices from the kubelet"
    ),
    "devicePlugin.rbac./nodes/proxy": (
        "not granted: nodes/proxy reaches every kubelet endpoint, AWS's closed plugin's use of "
        "it is unknown and AWS's 2024 manifests run the plugin without it"
    ),
    # Extender.
    "extender.container.securityContext": (
        "allowPrivilegeEscalation false and no capabilities: an HTTP server on port 12345 needs "
        "neither, and AWS's own chart runs its device plugin image under both"
    ),
    "extender.pod.priorityClassName": (
        "system-cluster-critical: the extender is a cluster service, not a per-node agent"
    ),
    "extender.pod.schedulerName": (
        "the default scheduler places the extender: my-scheduler needs the extender running to "
        "place anything, so AWS's placement deadlocks when both restart"
    ),
    "extender.pod.tolerations": "CriticalAddonsOnly, so that it may run on system node groups",
    # my-scheduler: the upstream kube-scheduler, not an AWS image.
    "scheduler.container.name": "kube-scheduler, the image's own binary name",
    "scheduler.container.image": (
        "registry.k8s.io/kube-scheduler at the cluster's own version, never newer than the API "
        "server (scheduler.image)"
    ),
    "scheduler.container.command": "the image's kube-scheduler on PATH",
    "scheduler.container.args": (
        "leader election set in the configuration file instead of a flag; the file is "
        "mounted under /etc/kubernetes/neuron-scheduler"
    ),
    "scheduler.container.securityContext": (
        "non-root, no capabilities, read-only root file system: kube-scheduler needs none"
    ),
    "scheduler.pod.securityContext": "UID 65534 and seccomp RuntimeDefault, as above",
    "scheduler.pod.priorityClassName": "system-cluster-critical: Neuron pods wait on it",
    "scheduler.pod.tolerations": "CriticalAddonsOnly, so that it may run on system node groups",
    "scheduler.rbac./configmaps": (
        "a Role for the authentication ConfigMap (extension-apiserver-authentication-reader) "
        "instead of every namespace's ConfigMaps"
    ),
    "scheduler.rbac.coordination.k8s.io/leases": (
        "create, and get and update of its own lease only, in its own namespace"
    ),
}


def _rules(objs: list[dict], component: str) -> dict[str, list[str]]:
    verbs: dict[str, set[str]] = {}
    for kind in ("ClusterRole", "Role"):
        for role in objects_of(objs, kind, component):
            for rule in role["rules"]:
                for group in rule.get("apiGroups", [""]):
                    for resource in rule["resources"]:
                        verbs.setdefault(f"{group}/{resource}", set()).update(rule["verbs"])
    return {key: sorted(v) for key, v in verbs.items()}


def _workload_fields(objs: list[dict], component: str) -> dict[str, Any]:
    obj = workload(objs, component)
    spec = pod_spec(obj)
    (c,) = spec["containers"]
    return {
        "container": {
            k: c.get(k) for k in ("name", "image", "command", "args", "env", "securityContext")
        },
        "pod": {
            k: spec.get(k)
            for k in ("securityContext", "priorityClassName", "schedulerName", "tolerations")
        }
        | {"affinity": spec.get("affinity")},
        "rbac": _rules(objs, component),
    }


def _ours() -> dict[str, Any]:
    objs = render(NAMES, namespace="kube-system", implementation=None)
    config = scheduler_config(objs)
    (extender,) = config["extenders"]
    leader = config["leaderElection"]
    return {
        "schedulerConfig": {
            "profiles": config["profiles"],
            "leaderElection": {
                k: leader.get(k) for k in ("leaderElect", "resourceNamespace", "resourceName")
            },
            "extender": extender,
        },
        "devicePlugin": _workload_fields(objs, "devicePlugin"),
        "extender": _workload_fields(objs, "extender"),
        "scheduler": _workload_fields(objs, "scheduler"),
    }


def _flatten(tree: Any, prefix: str = "", depth: int = 3) -> dict[str, Any]:
    """The first `depth` levels of maps are walked key by key (a key missing on one side is None
    there); below them a field (a securityContext, a toleration list) is a leaf compared whole."""
    if not isinstance(tree, dict) or depth == 0:
        return {prefix: tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(_flatten(value, f"{prefix}.{key}" if prefix else key, depth - 1))
    return out


@pytest.fixture(scope="module")
def differing() -> dict[str, tuple[Any, Any]]:
    golden, ours = _flatten(GOLDEN), _flatten(_ours())
    return {
        path: (golden.get(path), ours.get(path))
        for path in sorted(golden.keys() | ours.keys())
        if golden.get(path) != ours.get(path)
    }


def test_every_difference_from_awss_chart_is_a_listed_choice(differing):
    unexplained = {p: v for p, v in differing.items() if p not in DIFFERENCES}
    assert unexplained == {}, "golden vs chart: " + yaml.safe_dump(unexplained)


def test_every_listed_difference_still_exists(differing):
    assert sorted(set(DIFFERENCES) - set(differing)) == []


def test_awss_extender_gets_whole_nodes_and_failures_keep_neuron_pods_pending():
    (extender,) = scheduler_config(render(implementation=None))["extenders"]
    assert extender["nodeCacheCapable"] is False
    assert extender["ignorable"] is False
    # Only pods asking for these reach the extender: a failing one leaves other pods alone.
    assert [r["name"] for r in extender["managedResources"]] == [
        "aws.amazon.com/neuron",
        "aws.amazon.com/neuroncore",
    ]


def test_the_device_plugin_tolerates_every_taint_awss_tolerates():
    spec = pod_spec(workload(render(implementation=None), "devicePlugin"))

    def tolerated(taint: dict) -> bool:
        return any(
            (t.get("key") in (None, taint["key"]))
            and (t.get("effect") in (None, taint.get("effect")))
            and (t.get("operator") == "Exists" or t.get("value") == taint.get("value"))
            for t in spec["tolerations"]
        )

    assert all(tolerated(t) for t in GOLDEN["devicePlugin"]["pod"]["tolerations"])


def test_an_explicit_node_cache_setting_is_kept_with_awss_extender():
    values = {"scheduler": {"extenderConfig": {"nodeCacheCapable": True}}}
    (extender,) = scheduler_config(render(values, implementation=None))["extenders"]
    assert extender["nodeCacheCapable"] is True
