"""AWS-shaped copies of AWS's four Neuron manifests, for the Terraform migration test.

AWS's images are closed and need Neuron hardware, so the objects are rendered from the chart
with `aws-compat.yaml` over `kind.yaml`: this project's image, in fake-device mode, stands in
for AWS's, under AWS's object names, namespace and selectors. What the manifests have and the
chart does not render is added from the facts of AWS's files: my-scheduler's ClusterRole and
ClusterRoleBinding, and the extender's pod placed by my-scheduler. What the chart adds and the
manifests lack (Roles, NetworkPolicies, admission policies, TLS) is left out, as are Helm's
labels: nothing here was ever installed by Helm.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "neuron"
NAMESPACE = "kube-system"

# Per manifest file, the (kind, name) of each object it holds, in the file's order.
FILES: dict[str, list[tuple[str, str]]] = {
    "k8s-neuron-device-plugin-rbac.yml": [
        ("ClusterRole", "neuron-device-plugin"),
        ("ServiceAccount", "neuron-device-plugin"),
        ("ClusterRoleBinding", "neuron-device-plugin"),
    ],
    "k8s-neuron-device-plugin.yml": [("DaemonSet", "neuron-device-plugin-daemonset")],
    "k8s-neuron-scheduler-eks.yml": [
        ("ClusterRole", "k8s-neuron-scheduler"),
        ("ServiceAccount", "k8s-neuron-scheduler"),
        ("ClusterRoleBinding", "k8s-neuron-scheduler"),
        ("Deployment", "k8s-neuron-scheduler"),
        ("Service", "k8s-neuron-scheduler"),
    ],
    "my-scheduler.yml": [
        ("ServiceAccount", "my-scheduler"),
        ("ClusterRoleBinding", "my-scheduler-as-kube-scheduler"),
        ("ClusterRoleBinding", "my-scheduler-as-volume-scheduler"),
        ("ClusterRole", "my-scheduler"),
        ("ClusterRoleBinding", "my-scheduler"),
        ("ConfigMap", "my-scheduler-config"),
        ("Deployment", "my-scheduler"),
    ],
}
# my-scheduler.yml's own RBAC, which the chart replaces with a Role (docs/migration.md, step 7).
NOT_ADOPTED = {("ClusterRole", "my-scheduler"), ("ClusterRoleBinding", "my-scheduler")}
ADOPTED = [obj for objs in FILES.values() for obj in objs if obj not in NOT_ADOPTED]

_MY_SCHEDULER_RBAC: list[dict[str, Any]] = [
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "my-scheduler"},
        "rules": [
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]},
            {
                "apiGroups": ["coordination.k8s.io"],
                "resources": ["leases"],
                "verbs": ["create", "get", "list", "update"],
            },
        ],
    },
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "my-scheduler"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "my-scheduler",
        },
        "subjects": [{"kind": "ServiceAccount", "name": "my-scheduler", "namespace": NAMESPACE}],
    },
]


def _drop_helm_labels(meta: dict[str, Any]) -> None:
    kept = {
        k: v
        for k, v in (meta.get("labels") or {}).items()
        if not k.startswith(("app.kubernetes.io/", "helm.sh/"))
    }
    if kept:
        meta["labels"] = kept
    else:
        meta.pop("labels", None)


def _shape(obj: dict[str, Any]) -> dict[str, Any]:
    _drop_helm_labels(obj["metadata"])
    template = obj.get("spec", {}).get("template")
    if template:
        _drop_helm_labels(template["metadata"])
    if (obj["kind"], obj["metadata"]["name"]) == ("Deployment", "k8s-neuron-scheduler"):
        # AWS's k8s-neuron-scheduler-eks.yml has my-scheduler place the extender.
        template["spec"]["schedulerName"] = "my-scheduler"
    return obj


def render(values: Path, kube_version: str) -> dict[str, str]:
    """The four files' contents, by file name."""
    rendered = subprocess.run(
        [
            "helm", "template", "neuron", str(CHART), "-n", NAMESPACE,
            "-f", str(values), "-f", str(CHART / "examples" / "aws-compat.yaml"),
            "--kube-version", kube_version, "--skip-tests",
            "--set", "extender.tls.mode=disabled",
        ],
        check=True, text=True, capture_output=True,
    ).stdout  # fmt: skip
    by_key = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(rendered) if d}
    for obj in _MY_SCHEDULER_RBAC:
        by_key[(obj["kind"], obj["metadata"]["name"])] = obj
    files = {}
    for name, objs in FILES.items():
        missing = [key for key in objs if key not in by_key]
        assert not missing, f"the chart did not render {missing} for {name}"
        docs = [_shape(by_key[key]) for key in objs]
        files[name] = yaml.safe_dump_all(docs, sort_keys=False)
    return files
