"""Helpers for the chart tests: render charts/neuron with the pinned helm binary.

helm is taken from PATH (tox puts .tools/bin first); a missing or wrong helm fails the tests with
a sentence saying how to install it. Renders are cached per argument set, so many small tests
cost few helm runs.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml


def _load_versions(path: Path) -> dict[str, str]:
    """versions.env through cluster/versions.py (cluster/ is not a package on this path)."""
    spec = importlib.util.spec_from_file_location("neuron_versions", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(module.VERSIONS)


REPO = Path(__file__).resolve().parents[3]
VERSIONS = _load_versions(REPO / "cluster" / "versions.py")
CHART = REPO / "charts" / "neuron"
EXAMPLES = CHART / "examples"
CHART_DOCS = REPO / "scripts" / "chart-docs.sh"

# The cluster version the e2e harness runs; kube-scheduler's default tag derives from it.
KUBE_VERSION = VERSIONS["KUBERNETES_VERSION"]
NAMESPACE = "neuron-system"
RELEASE = "neuron"

# The NotIn every Neuron DaemonSet gets by default (`excludedComputeTypes`), as in AWS's chart 1.10:
# EKS Auto Mode nodes run AWS's own plugin; Fargate and hybrid nodes run no Neuron devices.
AUTO_MODE_OFF = {
    "key": "eks.amazonaws.com/compute-type",
    "operator": "NotIn",
    "values": ["fargate", "hybrid", "auto"],
}

# values block -> (workload kind, app.kubernetes.io/component label)
COMPONENTS = {
    "devicePlugin": ("DaemonSet", "device-plugin"),
    "extender": ("Deployment", "extender"),
    "scheduler": ("Deployment", "scheduler"),
}


def pinned_helm_version() -> str:
    return VERSIONS["HELM_VERSION"]


@functools.cache
def helm_binary() -> str:
    path = shutil.which("helm")
    if path is None:
        pytest.fail(
            "helm is not on PATH: run `bash scripts/install-tools.sh` and put "
            f"{REPO / '.tools' / 'bin'} first on PATH (`tox -e unit` does both)",
            pytrace=False,
        )
    return path


def run_helm(args: tuple[str, ...], stdin: str | None = None) -> subprocess.CompletedProcess:
    """helm, run anew each time (`_helm` caches: a test comparing two runs needs this)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELM_")}
    # Keep helm away from the user's repositories, plugins and cluster.
    scratch = tempfile.mkdtemp(prefix="helm-home-")
    env.update(
        HELM_CACHE_HOME=scratch,
        HELM_CONFIG_HOME=scratch,
        HELM_DATA_HOME=scratch,
        KUBECONFIG=os.path.join(scratch, "no-kubeconfig"),
    )
    return subprocess.run(
        [helm_binary(), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


_helm = functools.cache(run_helm)


def helm(*args: str) -> subprocess.CompletedProcess:
    return _helm(tuple(args))


@functools.cache
def _values_file(serialized: str) -> str:
    handle, path = tempfile.mkstemp(prefix="values-", suffix=".yaml")
    with os.fdopen(handle, "w") as out:
        out.write(serialized)
    return path


# Most tests are about this project's implementation; the chart's default is AWS's images
# (test_chart_aws.py). A base values file, first, so that examples and tests override it.
IMPLEMENTATION = "neuron-k8s"


# This project's image has no registry host by default, which the chart refuses unless the
# image is loaded onto the nodes (test_chart_images.py): the base loads it, as kind does.
LOADED = {c: {"image": {"pullPolicy": "Never"}} for c in ("devicePlugin", "extender", "dra")}


def _base(implementation: str | None) -> list[str]:
    if implementation is None:
        return []
    base: dict[str, Any] = {"implementation": implementation}
    if implementation == "neuron-k8s":
        base |= LOADED
    return ["--values", _values_file(json.dumps(base))]


# The EKS examples name this project's image repository with placeholders the user replaces
# (<account>, <region>): a value that reads as what to write, and that the chart refuses until
# it is replaced (test_chart_images.py). A test names an example to render it as a user who
# replaced them; an absolute path renders the file as shipped.
FILLED_IN = {"<account>": "111122223333", "<region>": "us-west-2"}


@functools.cache
def filled_example(name: str) -> str:
    """The path of examples/`name` with its placeholders replaced (the file itself if none)."""
    text = (EXAMPLES / name).read_text()
    if not any(p in text for p in FILLED_IN):
        return str(EXAMPLES / name)
    for placeholder, value in FILLED_IN.items():
        text = text.replace(placeholder, value)
    copy = Path(tempfile.mkdtemp(prefix="example-")) / name
    copy.write_text(text)
    return str(copy)


def _template_args(
    values: dict | None,
    files: Iterable[str | Path],
    set_values: Iterable[str],
    namespace: str,
    release: str,
    kube_version: str,
    implementation: str | None = IMPLEMENTATION,
    api_versions: Iterable[str] = (),
) -> list[str]:
    args = ["template", release, str(CHART), "--namespace", namespace]
    if kube_version:
        args += ["--kube-version", kube_version]
    for api in api_versions:
        args += ["--api-versions", api]
    args += _base(implementation)
    for f in files:
        path = Path(f)
        args += ["--values", str(path) if path.is_absolute() else filled_example(str(path))]
    if values:
        args += ["--values", _values_file(json.dumps(values, sort_keys=True))]
    for s in set_values:
        args += ["--set", s]
    return args


def render(
    values: dict | None = None,
    *,
    files: Iterable[str | Path] = (),
    set_values: Iterable[str] = (),
    namespace: str = NAMESPACE,
    release: str = RELEASE,
    kube_version: str = KUBE_VERSION,
    implementation: str | None = IMPLEMENTATION,
    api_versions: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """Render the chart and return its objects (helm test hooks included); `implementation`
    None renders the chart's own default; `api_versions` are APIs the cluster is said to serve
    (group/version/Kind)."""
    args = _template_args(
        values, files, set_values, namespace, release, kube_version, implementation, api_versions
    )
    result = helm(*args)
    if result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def render_error(
    values: dict | None = None,
    *,
    files: Iterable[str | Path] = (),
    set_values: Iterable[str] = (),
    namespace: str = NAMESPACE,
    kube_version: str = KUBE_VERSION,
    implementation: str | None = IMPLEMENTATION,
    api_versions: Iterable[str] = (),
) -> str:
    """Render the chart expecting a refusal; return helm's error output."""
    args = _template_args(
        values, files, set_values, namespace, RELEASE, kube_version, implementation, api_versions
    )
    result = helm(*args)
    assert result.returncode != 0, f"helm {' '.join(args)} unexpectedly succeeded"
    return result.stderr


def notes(
    values: dict | None = None,
    *,
    namespace: str = NAMESPACE,
    implementation: str | None = IMPLEMENTATION,
) -> str:
    """The NOTES.txt text of a client-side dry-run install."""
    args = ["install", RELEASE, str(CHART), "--namespace", namespace, "--dry-run=client"]
    # helm install has no --kube-version: offline, the scheduler's tag must be given.
    args += ["--values", _values_file(json.dumps({"scheduler": {"image": {"tag": KUBE_VERSION}}}))]
    args += _base(implementation)
    if values:
        args += ["--values", _values_file(json.dumps(values, sort_keys=True))]
    result = helm(*args)
    assert result.returncode == 0, result.stderr
    assert "NOTES:" in result.stdout, result.stdout
    return result.stdout.split("NOTES:", 1)[1]


# ---- finding things in rendered objects -------------------------------------------------------


def objects_of(objs: list[dict], kind: str, component: str | None = None) -> list[dict]:
    found = [o for o in objs if o["kind"] == kind]
    if component is not None:
        label = COMPONENTS[component][1] if component in COMPONENTS else component
        found = [
            o
            for o in found
            if o["metadata"].get("labels", {}).get("app.kubernetes.io/component") == label
        ]
    return found


def one(objs: list[dict], kind: str, component: str | None = None) -> dict:
    found = objects_of(objs, kind, component)
    assert len(found) == 1, f"expected one {kind} of {component}, got {len(found)}"
    return found[0]


def workload(objs: list[dict], component: str) -> dict:
    return one(objs, COMPONENTS[component][0], component)


def pod_spec(obj: dict) -> dict:
    return obj["spec"] if obj["kind"] == "Pod" else obj["spec"]["template"]["spec"]


def container(obj: dict) -> dict:
    containers = pod_spec(obj)["containers"]
    assert len(containers) == 1
    return containers[0]


def env_of(obj: dict) -> dict[str, Any]:
    """Container env as name -> value (or the valueFrom mapping)."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(obj).get("env", [])}


def scheduler_config(objs: list[dict]) -> dict:
    """The KubeSchedulerConfiguration embedded in the scheduler's ConfigMap, parsed."""
    configmap = one(objs, "ConfigMap", "scheduler")
    (text,) = configmap["data"].values()
    return yaml.safe_load(text)


def nested(values: dict, dotted: str, value: Any) -> dict:
    """{'a': {'b': value}} from 'a.b'."""
    out: dict = {}
    cursor = out
    keys = dotted.split(".")
    for key in keys[:-1]:
        cursor = cursor.setdefault(key, {})
    cursor[keys[-1]] = value
    return merge(values, out)


def merge(base: dict, extra: dict) -> dict:
    """`extra` over `base`, maps merged key by key as Helm merges values files."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def values_yaml() -> dict:
    return yaml.safe_load((CHART / "values.yaml").read_text())


def extender_service(objs: list[dict]) -> dict:
    """The extender's Service for the scheduler's calls (not its metrics Service)."""
    (svc,) = [
        o
        for o in objects_of(objs, "Service", "extender")
        if "neuron.k8s.local/metrics" not in o["metadata"]["labels"]
    ]
    return svc


def volumes(obj: dict) -> dict:
    """A workload's pod volumes, by name."""
    return {v["name"]: v for v in pod_spec(obj)["volumes"]}


def mounts(obj: dict) -> dict:
    """A workload's first container's volume mounts, by name."""
    return {m["name"]: m for m in container(obj)["volumeMounts"]}


def required_node_terms(obj: dict) -> list:
    """The nodeSelectorTerms of a workload's required node affinity."""
    node_affinity = pod_spec(obj)["affinity"]["nodeAffinity"]
    return node_affinity["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
