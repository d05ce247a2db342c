"""An AWS-shaped release of AWS's neuron-helm-chart, for the adoption test (test_96).

AWS's chart and images are closed to this machine (no registry answers), so the stand-in is a
Helm chart named `neuron-helm-chart` 1.10.0 whose objects are what AWS's chart creates with
`scheduler.enabled=true` and `npd.enabled=false` (docs: ../shared facts, "Objects created with
scheduler on and NPD off": 3 ServiceAccounts, 1 ConfigMap, 3 ClusterRoles, 5 ClusterRoleBindings,
1 Service, 1 DaemonSet `neuron-device-plugin`, 2 Deployments), under AWS's names in
`kube-system`, with Helm-style labels and selectors of its own: rendered from this chart with
this project's image in real mode standing in for AWS's, plain HTTP as AWS's extender serves, and
my-scheduler's ClusterRole as AWS ships it (aws_manifests.py). What this chart adds and AWS's
lacks (Roles, NetworkPolicies, admission policies, metrics Services) is left out.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml
from aws_manifests import _MY_SCHEDULER_RBAC

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "neuron"
NAMESPACE = "kube-system"
AWS_RELEASE = "neuron-helm-chart"
AWS_CHART_VERSION = "1.10.0"

OBJECTS: list[tuple[str, str]] = [
    ("ServiceAccount", "neuron-device-plugin"),
    ("ServiceAccount", "k8s-neuron-scheduler"),
    ("ServiceAccount", "my-scheduler"),
    ("ConfigMap", "my-scheduler-config"),
    ("ClusterRole", "neuron-device-plugin"),
    ("ClusterRole", "k8s-neuron-scheduler"),
    ("ClusterRole", "my-scheduler"),
    ("ClusterRoleBinding", "neuron-device-plugin"),
    ("ClusterRoleBinding", "k8s-neuron-scheduler"),
    ("ClusterRoleBinding", "my-scheduler"),
    ("ClusterRoleBinding", "my-scheduler-as-kube-scheduler"),
    ("ClusterRoleBinding", "my-scheduler-as-volume-scheduler"),
    ("Service", "k8s-neuron-scheduler"),
    ("DaemonSet", "neuron-device-plugin"),
    ("Deployment", "k8s-neuron-scheduler"),
    ("Deployment", "my-scheduler"),
]
# my-scheduler's ClusterRole and binding, which this chart replaces with a Role (the guide's
# clean-up deletes them).
NOT_ADOPTED = {("ClusterRole", "my-scheduler"), ("ClusterRoleBinding", "my-scheduler")}
ADOPTED = [o for o in OBJECTS if o not in NOT_ADOPTED]


def _selector(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": AWS_RELEASE}


def _labels(name: str) -> dict[str, str]:
    return {
        **_selector(name),
        "app.kubernetes.io/managed-by": "Helm",
        "helm.sh/chart": f"{AWS_RELEASE}-{AWS_CHART_VERSION}",
    }


def _shape(obj: dict[str, Any]) -> dict[str, Any]:
    """AWS's chart's labels and selectors on one of this chart's objects."""
    kind, name = obj["kind"], obj["metadata"]["name"]
    obj["metadata"]["labels"] = _labels(name)
    obj["metadata"].pop("annotations", None)
    if kind in ("DaemonSet", "Deployment"):
        obj["spec"]["selector"] = {"matchLabels": _selector(name)}
        template = obj["spec"]["template"]["metadata"]
        template["labels"] = _selector(name)
        template.pop("annotations", None)
    if kind == "Service":
        obj["spec"]["selector"] = _selector("k8s-neuron-scheduler")
    return obj


def write_chart(dest: Path, values: list[Path], kube_version: str) -> Path:
    """The stand-in chart, in `dest`; its objects are a file the template includes whole."""
    rendered = subprocess.run(
        [
            "helm", "template", AWS_RELEASE, str(CHART), "-n", NAMESPACE,
            *[a for v in values for a in ("-f", str(v))],
            "-f", str(CHART / "examples" / "aws-compat.yaml"),
            "--set", "devicePlugin.daemonSetNameOverride=neuron-device-plugin",
            "--set", "extender.tls.mode=disabled",
            "--kube-version", kube_version, "--skip-tests",
        ],
        check=True, text=True, capture_output=True,
    ).stdout  # fmt: skip
    by_key = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(rendered) if d}
    for obj in _MY_SCHEDULER_RBAC:
        by_key[(obj["kind"], obj["metadata"]["name"])] = obj
    missing = [key for key in OBJECTS if key not in by_key]
    assert not missing, f"the chart did not render {missing}"
    docs = [_shape(by_key[key]) for key in OBJECTS]
    for doc in docs:
        if doc["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            doc["metadata"]["namespace"] = NAMESPACE
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "Chart.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v2",
                "name": AWS_RELEASE,
                "version": AWS_CHART_VERSION,
                "appVersion": "2.32.0.0",
            }
        )
    )
    (dest / "objects.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))
    (dest / "templates").mkdir(exist_ok=True)
    (dest / "templates" / "objects.yaml").write_text('{{ .Files.Get "objects.yaml" }}\n')
    return dest
