"""The per-cluster values files in charts/neuron/examples and the aws-compat adoption preset."""

import pytest
from chartlib import (
    EXAMPLES,
    KUBE_VERSION,
    container,
    env_of,
    extender_service,
    objects_of,
    one,
    pod_spec,
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

EXAMPLE_FILES = sorted(p.name for p in EXAMPLES.glob("*.yaml"))
# eks-dra.yaml runs the DRA driver alone (test_chart_dra.py); the others the three components.
WITH_THREE = [n for n in EXAMPLE_FILES if n != "eks-dra.yaml"]
EKS_VERSION = "v1.35.3-eks-1a2b3c4"


def test_expected_example_files_exist():
    assert EXAMPLE_FILES == [
        "aws-compat.yaml",
        "eks-dra.yaml",
        "eks-inf2.yaml",
        "eks-trn1.yaml",
        "kind-real-mode.yaml",
        "kind.yaml",
    ]


@pytest.mark.parametrize("name", WITH_THREE)
def test_example_renders_every_component(name):
    objs = render(files=[name])
    for component in ("devicePlugin", "extender", "scheduler"):
        assert workload(objs, component)


IMPLEMENTATIONS = ["aws", "neuron-k8s"]
# kind.yaml runs fake devices, which only this project's plugin has.
WITH_EITHER = [
    (n, i) for n in WITH_THREE for i in IMPLEMENTATIONS if (n, i) != ("kind.yaml", "aws")
]


@pytest.mark.parametrize(("name", "implementation"), WITH_EITHER)
def test_example_runs_with_either_implementation(name, implementation):
    objs = render(files=[name], set_values=[f"implementation={implementation}"])
    plugin_env = env_of(workload(objs, "devicePlugin"))
    assert ("KUBECONFIG" in plugin_env) == (implementation == "aws"), plugin_env
    extenders = scheduler_config(objs)["extenders"]
    assert ("prioritizeVerb" in extenders[0]) == (implementation == "neuron-k8s"), extenders


def test_kind_example_with_awss_images_is_refused_for_its_fake_devices():
    error = render_error(files=["kind.yaml"], set_values=["implementation=aws"])
    assert "devicePlugin.fake.enabled=true needs devicePlugin.implementation=neuron-k8s" in error


# ---- kind --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kind_objects():
    return render(files=["kind.yaml"])


def test_kind_uses_preloaded_images_without_pulling(kind_objects):
    images = {}
    for obj in kind_objects:
        if obj["kind"] in ("DaemonSet", "Deployment", "Pod"):
            c = container(obj)
            images[obj["metadata"]["name"]] = (c["image"], c["imagePullPolicy"])
    assert images == {
        "neuron-device-plugin": ("neuron-k8s:0.1.0", "Never"),
        "neuron-extender": ("neuron-k8s:0.1.0", "Never"),
        "neuron-dra": ("neuron-k8s:0.1.0", "Never"),
        "neuron-scheduler": (f"registry.k8s.io/kube-scheduler:{KUBE_VERSION}", "Never"),
        "neuron-test": ("neuron-k8s:0.1.0", "Never"),
    }


def test_kind_scheduler_runs_the_control_planes_own_image():
    objs = render(files=["kind.yaml"], kube_version="v1.35.2")
    assert container(workload(objs, "scheduler"))["image"].endswith(":v1.35.2")


def test_kind_fake_mode_reads_instance_type_label_and_health_file(kind_objects):
    obj = workload(kind_objects, "devicePlugin")
    env = env_of(obj)
    assert env["NEURON_DP_FAKE_INSTANCE_TYPE_LABEL"] == "node.kubernetes.io/instance-type"
    assert env["NEURON_DP_FAKE_HEALTH_FILE"] == "/var/lib/neuron-fake/unhealthy"
    assert "NEURON_DP_FAKE_INSTANCE_TYPE" not in env
    host_paths = {v["hostPath"]["path"] for v in pod_spec(obj)["volumes"] if "hostPath" in v}
    assert "/var/lib/neuron-fake" in host_paths


def test_kind_worker_instance_types_are_selected(kind_objects):
    obj = workload(kind_objects, "devicePlugin")
    required = pod_spec(obj)["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]
    expression = required["nodeSelectorTerms"][0]["matchExpressions"][0]
    assert expression["key"] == "node.kubernetes.io/instance-type"
    assert {"inf2.48xlarge", "trn1.32xlarge"} <= set(expression["values"])


def test_kind_resources_are_small(kind_objects):
    for component in ("devicePlugin", "extender", "scheduler"):
        requests = container(workload(kind_objects, component))["resources"]["requests"]
        assert requests["cpu"].endswith("m") and int(requests["cpu"][:-1]) <= 50


# ---- EKS ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "types"),
    [
        ("eks-inf2.yaml", ["inf2.xlarge", "inf2.8xlarge", "inf2.24xlarge", "inf2.48xlarge"]),
        ("eks-trn1.yaml", ["trn1.2xlarge", "trn1.32xlarge", "trn1n.32xlarge"]),
    ],
)
def test_eks_example_selects_its_instance_types(name, types):
    obj = workload(render(files=[name], kube_version=EKS_VERSION), "devicePlugin")
    required = pod_spec(obj)["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]
    assert required["nodeSelectorTerms"][0]["matchExpressions"][0]["values"] == types


@pytest.mark.parametrize("name", ["eks-inf2.yaml", "eks-trn1.yaml"])
def test_eks_example_scheduler_follows_cluster_version(name):
    obj = workload(render(files=[name], kube_version=EKS_VERSION), "scheduler")
    assert container(obj)["image"] == "registry.k8s.io/kube-scheduler:v1.35.3"


@pytest.mark.parametrize("name", ["eks-inf2.yaml", "eks-trn1.yaml"])
def test_eks_example_keeps_extender_and_scheduler_off_neuron_nodes(name):
    objs = render(files=[name], kube_version=EKS_VERSION)
    for component in ("extender", "scheduler"):
        affinity = pod_spec(workload(objs, component))["affinity"]["nodeAffinity"]
        terms = affinity["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        assert terms[0]["matchExpressions"][0]["operator"] == "NotIn"


def test_eks_trn1_runs_two_schedulers_with_leader_election():
    objs = render(files=["eks-trn1.yaml"], kube_version=EKS_VERSION)
    assert workload(objs, "scheduler")["spec"]["replicas"] == 2
    assert scheduler_config(objs)["leaderElection"]["leaderElect"] is True


# ---- aws-compat --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compat_objects():
    return render(files=["aws-compat.yaml"], namespace="kube-system")


def test_aws_compat_renders_the_aws_object_names(compat_objects):
    names = sorted((o["kind"], o["metadata"]["name"]) for o in compat_objects if o["kind"] != "Pod")
    assert names == sorted(
        [
            # k8s-neuron-device-plugin-rbac.yml
            ("ClusterRole", "neuron-device-plugin"),
            ("ServiceAccount", "neuron-device-plugin"),
            ("ClusterRoleBinding", "neuron-device-plugin"),
            # k8s-neuron-device-plugin.yml
            ("DaemonSet", "neuron-device-plugin-daemonset"),
            # k8s-neuron-scheduler-eks.yml
            ("ClusterRole", "k8s-neuron-scheduler"),
            ("ServiceAccount", "k8s-neuron-scheduler"),
            ("ClusterRoleBinding", "k8s-neuron-scheduler"),
            ("Deployment", "k8s-neuron-scheduler"),
            ("Service", "k8s-neuron-scheduler"),
            ("Service", "neuron-device-plugin-metrics"),
            ("Service", "k8s-neuron-scheduler-metrics"),
            # my-scheduler.yml
            ("ServiceAccount", "my-scheduler"),
            ("ClusterRoleBinding", "my-scheduler-as-kube-scheduler"),
            ("ClusterRoleBinding", "my-scheduler-as-volume-scheduler"),
            ("ConfigMap", "my-scheduler-config"),
            ("Deployment", "my-scheduler"),
            # Not in AWS's manifests (docs/migration.md lists why): narrower RBAC for the
            # scheduler's lease and authentication ConfigMap instead of ClusterRole my-scheduler,
            # the extender's patch of its own pod, the admission policies, mutual TLS (its
            # certificates issued by the extender, in the cluster), and the NetworkPolicy.
            ("Role", "my-scheduler"),
            ("RoleBinding", "my-scheduler"),
            ("RoleBinding", "my-scheduler-auth-reader"),
            ("Role", "k8s-neuron-scheduler"),
            ("RoleBinding", "k8s-neuron-scheduler"),
            ("ValidatingAdmissionPolicy", "neuron-device-plugin"),
            ("ValidatingAdmissionPolicyBinding", "neuron-device-plugin"),
            ("ValidatingAdmissionPolicy", "neuron-device-plugin-node-health"),
            ("ValidatingAdmissionPolicyBinding", "neuron-device-plugin-node-health"),
            ("ValidatingAdmissionPolicy", "k8s-neuron-scheduler"),
            ("ValidatingAdmissionPolicyBinding", "k8s-neuron-scheduler"),
            ("ValidatingAdmissionPolicy", "k8s-neuron-scheduler-secrets"),
            ("ValidatingAdmissionPolicyBinding", "k8s-neuron-scheduler-secrets"),
            ("ValidatingAdmissionPolicy", "neuron-pod-records"),
            ("ValidatingAdmissionPolicyBinding", "neuron-pod-records"),
            ("NetworkPolicy", "k8s-neuron-scheduler"),
            ("NetworkPolicy", "neuron-device-plugin"),
            ("NetworkPolicy", "my-scheduler"),
        ]
    )


def test_aws_compat_namespaced_objects_in_kube_system(compat_objects):
    for obj in compat_objects:
        if "namespace" in obj["metadata"] or obj["kind"] not in CLUSTER_SCOPED:
            assert obj["metadata"]["namespace"] == "kube-system"


@pytest.mark.parametrize(
    ("kind", "component", "selector"),
    [
        ("DaemonSet", "devicePlugin", {"name": "neuron-device-plugin-ds"}),
        (
            "Deployment",
            "extender",
            {"app": "neuron-scheduler", "component": "k8s-neuron-scheduler"},
        ),
        ("Deployment", "scheduler", {"component": "scheduler", "tier": "control-plane"}),
    ],
)
def test_aws_compat_keeps_the_immutable_aws_selectors(compat_objects, kind, component, selector):
    obj = one(compat_objects, kind, component)
    assert obj["spec"]["selector"]["matchLabels"] == selector
    assert selector.items() <= obj["spec"]["template"]["metadata"]["labels"].items()


def test_aws_compat_service_selects_aws_labels(compat_objects):
    service = extender_service(compat_objects)
    assert service["spec"]["selector"] == {
        "app": "neuron-scheduler",
        "component": "k8s-neuron-scheduler",
    }
    assert service["spec"]["ports"][0] == {
        "name": "http",
        "port": 12345,
        "targetPort": "http",
        "protocol": "TCP",
    }


def test_aws_compat_config_map_key_and_extender_url(compat_objects):
    configmap = one(compat_objects, "ConfigMap", "scheduler")
    assert list(configmap["data"]) == ["my-scheduler-config.yaml"]
    config = scheduler_config(compat_objects)
    assert config["extenders"][0]["urlPrefix"] == (
        "https://k8s-neuron-scheduler.kube-system.svc.cluster.local:12345"
    )
    assert config["profiles"] == [{"schedulerName": "my-scheduler"}]
    assert config["leaderElection"]["resourceName"] == "my-scheduler"


def test_aws_compat_service_accounts_keep_aws_names(compat_objects):
    accounts = {
        c: pod_spec(workload(compat_objects, c))["serviceAccountName"]
        for c in ("devicePlugin", "extender", "scheduler")
    }
    assert accounts == {
        "devicePlugin": "neuron-device-plugin",
        "extender": "k8s-neuron-scheduler",
        "scheduler": "my-scheduler",
    }


def test_aws_compat_extender_is_placed_by_the_default_scheduler(compat_objects):
    assert "schedulerName" not in pod_spec(workload(compat_objects, "extender"))


def test_aws_compat_combines_with_a_cluster_file():
    objs = render(files=["eks-inf2.yaml", "aws-compat.yaml"], namespace="kube-system")
    daemonset = workload(objs, "devicePlugin")
    assert daemonset["metadata"]["name"] == "neuron-device-plugin-daemonset"
    assert container(daemonset)["image"].startswith("111122223333.dkr.ecr.")  # filled in
    assert len(objects_of(objs, "ClusterRoleBinding")) == 4
