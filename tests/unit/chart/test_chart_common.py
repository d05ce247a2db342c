"""Chart-wide behaviour: object set, names, namespaces, labels, the pinned helm."""

import shutil
from pathlib import Path

import pytest
import yaml
from chartlib import (
    CHART,
    COMPONENTS,
    KUBE_VERSION,
    NAMESPACE,
    RELEASE,
    extender_service,
    helm,
    pinned_helm_version,
    render,
    render_error,
    scheduler_config,
    workload,
)

CLUSTER_SCOPED = {
    "ClusterRole",
    "ClusterRoleBinding",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
}
# kube-scheduler's built-in Role for reading the authentication ConfigMap lives there.
IN_KUBE_SYSTEM = {("RoleBinding", "neuron-scheduler-auth-reader")}
CHART_YAML = yaml.safe_load((CHART / "Chart.yaml").read_text())
STANDARD_LABELS = {
    "helm.sh/chart": f"neuron-{CHART_YAML['version']}",
    "app.kubernetes.io/name": "neuron",
    "app.kubernetes.io/instance": "neuron",
    "app.kubernetes.io/version": CHART_YAML["appVersion"],
    "app.kubernetes.io/managed-by": "Helm",
    "app.kubernetes.io/part-of": "neuron",
}


def kinds_and_names(objs):
    return sorted((o["kind"], o["metadata"]["name"]) for o in objs)


def test_helm_on_path_is_the_pinned_version():
    result = helm("version", "--short")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(pinned_helm_version() + "+"), result.stdout


def test_defaults_render_every_object_with_default_names(default_objects):
    assert kinds_and_names(default_objects) == sorted(
        [
            ("ServiceAccount", "neuron-device-plugin"),
            ("ClusterRole", "neuron-device-plugin"),
            ("ClusterRoleBinding", "neuron-device-plugin"),
            ("ValidatingAdmissionPolicy", "neuron-device-plugin"),
            ("ValidatingAdmissionPolicyBinding", "neuron-device-plugin"),
            ("ValidatingAdmissionPolicy", "neuron-device-plugin-node-health"),
            ("ValidatingAdmissionPolicyBinding", "neuron-device-plugin-node-health"),
            ("DaemonSet", "neuron-device-plugin"),
            ("NetworkPolicy", "neuron-device-plugin"),
            ("ServiceAccount", "neuron-extender"),
            ("ClusterRole", "neuron-extender"),
            ("ClusterRoleBinding", "neuron-extender"),
            ("Role", "neuron-extender"),
            ("RoleBinding", "neuron-extender"),
            ("ValidatingAdmissionPolicy", "neuron-extender"),
            ("ValidatingAdmissionPolicyBinding", "neuron-extender"),
            ("ValidatingAdmissionPolicy", "neuron-extender-secrets"),
            ("ValidatingAdmissionPolicyBinding", "neuron-extender-secrets"),
            ("NetworkPolicy", "neuron-extender"),
            ("Deployment", "neuron-extender"),
            ("Service", "neuron-extender"),
            ("Service", "neuron-device-plugin-metrics"),
            ("Service", "neuron-extender-metrics"),
            ("ServiceAccount", "neuron-scheduler"),
            ("Role", "neuron-scheduler"),
            ("RoleBinding", "neuron-scheduler"),
            ("RoleBinding", "neuron-scheduler-auth-reader"),
            ("ClusterRoleBinding", "neuron-scheduler-as-kube-scheduler"),
            ("ClusterRoleBinding", "neuron-scheduler-as-volume-scheduler"),
            ("ConfigMap", "neuron-scheduler-config"),
            ("Deployment", "neuron-scheduler"),
            ("NetworkPolicy", "neuron-scheduler"),
            ("ValidatingAdmissionPolicy", "neuron-pod-records"),
            ("ValidatingAdmissionPolicyBinding", "neuron-pod-records"),
            ("Pod", "neuron-test"),
        ]
    )


def test_release_name_without_chart_name_prefixes_it():
    objs = render(release="prod")
    assert workload(objs, "devicePlugin")["metadata"]["name"] == "prod-neuron-device-plugin"


def test_name_override_changes_names_and_name_label():
    objs = render({"nameOverride": "inferentia"})
    daemonset = workload(objs, "devicePlugin")
    assert daemonset["metadata"]["name"] == "neuron-inferentia-device-plugin"
    assert daemonset["metadata"]["labels"]["app.kubernetes.io/name"] == "inferentia"
    selector = daemonset["spec"]["selector"]["matchLabels"]
    assert selector["app.kubernetes.io/name"] == "inferentia"


def test_fullname_override_replaces_base_name():
    objs = render({"fullnameOverride": "acc"})
    names = {o["metadata"]["name"] for o in objs if o["kind"] in ("DaemonSet", "Deployment")}
    assert names == {"acc-device-plugin", "acc-extender", "acc-scheduler"}


def where(obj):
    return (obj["kind"], obj["metadata"]["name"])


def test_namespaced_objects_go_to_release_namespace(default_objects):
    for obj in default_objects:
        if obj["kind"] not in CLUSTER_SCOPED:
            expected = "kube-system" if where(obj) in IN_KUBE_SYSTEM else NAMESPACE
            assert obj["metadata"]["namespace"] == expected, where(obj)


def test_cluster_scoped_objects_carry_no_namespace(default_objects):
    for obj in default_objects:
        if obj["kind"] in CLUSTER_SCOPED:
            assert "namespace" not in obj["metadata"], obj["metadata"]["name"]


def test_namespace_override_moves_every_namespaced_object_and_reference():
    objs = render({"namespaceOverride": "accel"})
    for obj in objs:
        if obj["kind"] not in CLUSTER_SCOPED and where(obj) not in IN_KUBE_SYSTEM:
            assert obj["metadata"]["namespace"] == "accel", where(obj)
        if obj["kind"] in ("ClusterRoleBinding", "RoleBinding"):
            assert {s["namespace"] for s in obj["subjects"]} == {"accel"}
    config = scheduler_config(objs)
    assert config["leaderElection"]["resourceNamespace"] == "accel"
    assert ".accel.svc." in config["extenders"][0]["urlPrefix"]


def test_standard_labels_on_every_object(default_objects):
    for obj in default_objects:
        labels = obj["metadata"]["labels"]
        for key, value in STANDARD_LABELS.items():
            assert labels[key] == value, (obj["kind"], obj["metadata"]["name"], key)
        assert labels["app.kubernetes.io/component"] in {
            "device-plugin",
            "extender",
            "scheduler",
            "test",
            "pod-records",
        }


VERSION_LABELS = ("helm.sh/chart", "app.kubernetes.io/version")


@pytest.mark.parametrize("component", sorted(COMPONENTS))
def test_pod_templates_carry_standard_labels_but_no_versions(default_objects, component):
    labels = workload(default_objects, component)["spec"]["template"]["metadata"]["labels"]
    for key, value in STANDARD_LABELS.items():
        if key not in VERSION_LABELS:
            assert labels[key] == value
    assert not set(VERSION_LABELS) & set(labels), labels


def _templates(chart_dir: Path) -> dict[str, dict]:
    """The pod templates of the chart in `chart_dir` with its default values, by component."""
    args = ["template", RELEASE, str(chart_dir), "-n", NAMESPACE, "--kube-version", KUBE_VERSION]
    result = helm(*args)
    assert result.returncode == 0, result.stderr
    objs = [d for d in yaml.safe_load_all(result.stdout) if d]
    return {c: workload(objs, c)["spec"]["template"] for c in COMPONENTS}


def test_a_chart_bump_alone_leaves_the_pod_templates_unchanged(tmp_path):
    # Failed before: helm.sh/chart and app.kubernetes.io/version on the pod templates made a
    # version bump roll every Neuron node's plugin.
    bumped = tmp_path / "neuron"
    shutil.copytree(CHART, bumped)
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    chart.update(version="99.0.0", appVersion="99.0.0")
    (bumped / "Chart.yaml").write_text(yaml.safe_dump(chart))
    assert _templates(bumped) == _templates(CHART)


def test_common_labels_on_every_object():
    objs = render({"commonLabels": {"team": "ml-platform"}})
    for obj in objs:
        assert obj["metadata"]["labels"]["team"] == "ml-platform", obj["metadata"]["name"]


def test_common_labels_cannot_replace_standard_labels():
    objs = render({"commonLabels": {"app.kubernetes.io/name": "other"}})
    for obj in objs:
        assert obj["metadata"]["labels"]["app.kubernetes.io/name"] == "neuron"


def test_part_of_sets_label():
    objs = render({"partOf": "ml-stack"})
    for obj in objs:
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "ml-stack"


def test_cluster_domain_builds_extender_url():
    config = scheduler_config(render({"clusterDomain": "corp.internal"}))
    url = config["extenders"][0]["urlPrefix"]
    assert url == f"https://neuron-extender.{NAMESPACE}.svc.corp.internal:12345"


@pytest.mark.parametrize("component", sorted(COMPONENTS))
def test_selector_labels_are_a_subset_of_pod_labels(default_objects, component):
    obj = workload(default_objects, component)
    selector = obj["spec"]["selector"]["matchLabels"]
    labels = obj["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()
    assert selector == {
        "app.kubernetes.io/name": "neuron",
        "app.kubernetes.io/instance": "neuron",
        "app.kubernetes.io/component": COMPONENTS[component][1],
    }


def test_every_component_disabled_is_refused():
    error = render_error(
        {
            "devicePlugin": {"enabled": False},
            "extender": {"enabled": False},
            "scheduler": {"enabled": False},
        }
    )
    assert "Nothing to install" in error


def test_service_selects_the_extender_pods(default_objects):
    service = extender_service(default_objects)
    labels = workload(default_objects, "extender")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
