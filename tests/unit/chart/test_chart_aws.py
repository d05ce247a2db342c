"""The chart's defaults are AWS's images, which every EKS node can pull, and with
examples/aws-compat.yaml it renders every object of AWS's four manifests (the facts of
shared/reference, section 1) with the same kind, name, namespace, selector, image, environment,
volumes, tolerations, affinity, RBAC rules (equal, or narrower where docs/migration.md lists
why) and scheduler configuration. Which mixes of the two implementations are allowed, and the
sentences that refuse the others."""

import pytest
from chartlib import (
    KUBE_VERSION,
    container,
    objects_of,
    pod_spec,
    render,
    render_error,
    scheduler_config,
    workload,
)

# k8s-neuron-device-plugin.yml's required affinity (inf2.4xlarge was dropped upstream).
MANIFEST_TYPES = [
    "inf1.xlarge", "inf1.2xlarge", "inf1.6xlarge", "inf1.24xlarge",
    "inf2.xlarge", "inf2.8xlarge", "inf2.24xlarge", "inf2.48xlarge",
    "trn1.2xlarge", "trn1.32xlarge", "trn1n.32xlarge",
]  # fmt: skip


@pytest.fixture(scope="module")
def aws():
    return render(files=["aws-compat.yaml"], namespace="kube-system", implementation=None)


def by_name(objs, kind, name):
    (found,) = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def rules(obj):
    return sorted((tuple(r["resources"]), tuple(sorted(r["verbs"]))) for r in obj["rules"])


def test_with_no_values_every_image_is_pulled_from_a_public_registry():
    objs = render(implementation=None)
    images = {
        container(o)["image"] for o in objs if o["kind"] in ("DaemonSet", "Deployment", "Pod")
    }
    assert images == {
        "public.ecr.aws/neuron/neuron-device-plugin:2.32.0.0",
        "public.ecr.aws/neuron/neuron-scheduler:2.32.0.0",
        f"registry.k8s.io/kube-scheduler:{KUBE_VERSION}",
        "public.ecr.aws/docker/library/python:3.11-slim",
        "registry.k8s.io/node-problem-detector/node-problem-detector:v1.35.2",
    }


def test_the_device_plugin_daemonset_is_awss(aws):
    ds = by_name(aws, "DaemonSet", "neuron-device-plugin-daemonset")
    spec = pod_spec(ds)
    c = container(ds)
    assert ds["metadata"]["namespace"] == "kube-system"
    assert ds["spec"]["selector"]["matchLabels"] == {"name": "neuron-device-plugin-ds"}
    assert ds["spec"]["updateStrategy"]["type"] == "RollingUpdate"
    assert spec["serviceAccountName"] == "neuron-device-plugin"
    assert spec["priorityClassName"] == "system-node-critical"
    assert spec["tolerations"] == [
        {"key": "CriticalAddonsOnly", "operator": "Exists"},
        {"key": "aws.amazon.com/neuron", "operator": "Exists", "effect": "NoSchedule"},
    ]
    (term,) = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    expr, compute_type = term["matchExpressions"]
    assert expr["key"] == "node.kubernetes.io/instance-type" and expr["operator"] == "In"
    assert compute_type["key"] == "eks.amazonaws.com/compute-type"
    # The same types, and those AWS's chart 1.10 added: trn2, trn3 and SageMaker HyperPod's ml.*
    # (changed from the raw manifests' list with the golden of test_chart_aws_golden.py).
    assert set(MANIFEST_TYPES) <= set(expr["values"])
    assert {"trn2.48xlarge", "trn3.48xlarge", "ml.inf2.xlarge"} <= set(expr["values"])
    assert c["name"] == "neuron-device-plugin"
    assert c["image"] == "public.ecr.aws/neuron/neuron-device-plugin:2.32.0.0"
    assert c["env"] == [
        {"name": "KUBECONFIG", "value": "/etc/kubernetes/kubelet.conf"},
        {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
    ]
    assert "command" not in c and "ports" not in c and "livenessProbe" not in c
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"]}
    assert mounts["device-plugin"] == volumes["device-plugin"] == "/var/lib/kubelet/device-plugins"
    assert mounts["infa-map"] == volumes["infa-map"] == "/run"
    # AWS's later chart's /opt/aws (trn2's logical core size), read-only.
    assert set(mounts) == {"device-plugin", "infa-map", "opt-aws"}


def test_the_device_plugin_rbac_is_awss(aws):
    role = by_name(aws, "ClusterRole", "neuron-device-plugin")
    assert rules(role) == sorted(
        [
            (("nodes",), ("get", "list", "watch")),
            (("events",), ("create", "patch")),
            (("pods",), ("get", "list", "patch", "update", "watch")),
            (("nodes/status",), ("patch", "update")),
        ]
    )
    assert by_name(aws, "ServiceAccount", "neuron-device-plugin")["metadata"]["namespace"] == (
        "kube-system"
    )
    binding = by_name(aws, "ClusterRoleBinding", "neuron-device-plugin")
    assert binding["roleRef"]["name"] == "neuron-device-plugin"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "neuron-device-plugin", "namespace": "kube-system"}
    ]


def test_the_extender_deployment_and_service_are_awss(aws):
    dep = by_name(aws, "Deployment", "k8s-neuron-scheduler")
    c = container(dep)
    assert dep["metadata"]["namespace"] == "kube-system"
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"] == {"type": "Recreate"}
    assert dep["spec"]["selector"]["matchLabels"] == {
        "app": "neuron-scheduler",
        "component": "k8s-neuron-scheduler",
    }
    assert pod_spec(dep)["serviceAccountName"] == "k8s-neuron-scheduler"
    assert c["name"] == "neuron-scheduler-exp"
    assert c["image"] == "public.ecr.aws/neuron/neuron-scheduler:2.32.0.0"
    assert c["env"] == [{"name": "PORT", "value": "12345"}]
    # Placed by the default scheduler, not by my-scheduler, which needs it running first.
    assert "schedulerName" not in pod_spec(dep)
    svc = by_name(aws, "Service", "k8s-neuron-scheduler")
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["ports"] == [
        {"name": "http", "port": 12345, "targetPort": "http", "protocol": "TCP"}
    ]
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]


def test_the_extender_rbac_is_awss(aws):
    assert rules(by_name(aws, "ClusterRole", "k8s-neuron-scheduler")) == sorted(
        [
            (("nodes",), ("get", "list", "watch")),
            (("nodes/status",), ("get", "list", "patch", "update", "watch")),
            (("events",), ("create", "patch")),
            (("pods",), ("get", "list", "patch", "update", "watch")),
            (("bindings", "pods/binding"), ("create",)),
        ]
    )
    binding = by_name(aws, "ClusterRoleBinding", "k8s-neuron-scheduler")
    assert binding["subjects"][0]["name"] == "k8s-neuron-scheduler"


def test_my_scheduler_is_awss_with_narrower_rbac(aws):
    dep = by_name(aws, "Deployment", "my-scheduler")
    assert dep["metadata"]["namespace"] == "kube-system"
    assert dep["spec"]["selector"]["matchLabels"] == {
        "component": "scheduler",
        "tier": "control-plane",
    }
    assert pod_spec(dep)["serviceAccountName"] == "my-scheduler"
    args = container(dep)["args"]
    assert args[0] == "--config=/etc/kubernetes/neuron-scheduler/my-scheduler-config.yaml"
    assert "--v=2" in args
    crbs = {
        b["metadata"]["name"]: b["roleRef"]["name"] for b in objects_of(aws, "ClusterRoleBinding")
    }
    assert crbs["my-scheduler-as-kube-scheduler"] == "system:kube-scheduler"
    assert crbs["my-scheduler-as-volume-scheduler"] == "system:volume-scheduler"
    # Narrower than AWS's ClusterRole my-scheduler (docs/migration.md): its own lease only.
    assert "my-scheduler" not in {r["metadata"]["name"] for r in objects_of(aws, "ClusterRole")}
    assert by_name(aws, "Role", "my-scheduler")["metadata"]["namespace"] == "kube-system"


def test_the_scheduler_configuration_means_what_awss_does(aws):
    cm = by_name(aws, "ConfigMap", "my-scheduler-config")
    assert list(cm["data"]) == ["my-scheduler-config.yaml"]
    config = scheduler_config(aws)
    assert config["apiVersion"] == "kubescheduler.config.k8s.io/v1"
    assert config["profiles"] == [{"schedulerName": "my-scheduler"}]
    (ext,) = config["extenders"]
    assert ext["urlPrefix"] == "http://k8s-neuron-scheduler.kube-system.svc.cluster.local:12345"
    assert (ext["filterVerb"], ext["bindVerb"]) == ("filter", "bind")
    assert "prioritizeVerb" not in ext and "weight" not in ext
    assert ext["enableHTTPS"] is False and "tlsConfig" not in ext
    # Changed from the 2024 manifests' true: AWS's chart 1.9/1.10 sends whole Nodes to the
    # 2.31-2.32 extender this chart runs (test_chart_aws_golden.py).
    assert ext["nodeCacheCapable"] is False and ext["ignorable"] is False
    assert ext["managedResources"] == [
        {"name": f"aws.amazon.com/{r}", "ignoredByScheduler": False}
        for r in ("neuron", "neuroncore", "neurondevice")
    ]
    leader = config["leaderElection"]
    assert leader["leaderElect"] is True
    assert (leader["resourceNamespace"], leader["resourceName"]) == ("kube-system", "my-scheduler")


def test_no_policy_narrows_awss_closed_images_and_no_tls(aws):
    # What AWS's images write is unknown: only the policy that keeps the pods' records to the
    # stack (whose accounts AWS's images run as) is rendered, none narrowing the images' writes;
    # and node-problem-detector's (upstream's open image, on beside AWS's plugin), keeping its
    # status writes to the NeuronHealth condition of its own node.
    policies = objects_of(aws, "ValidatingAdmissionPolicy")
    assert sorted(p["metadata"]["labels"]["app.kubernetes.io/component"] for p in policies) == [
        "node-problem-detector",
        "pod-records",
    ]
    assert objects_of(aws, "Secret") == []


def test_awss_plugin_with_this_projects_extender_is_allowed():
    objs = render(
        {
            "implementation": "aws",
            "extender": {"implementation": "neuron-k8s", "image": {"pullPolicy": "Never"}},
        },
        implementation=None,
    )
    assert container(workload(objs, "devicePlugin"))["image"].startswith("public.ecr.aws/neuron/")
    ext = scheduler_config(objs)["extenders"][0]
    assert ext["prioritizeVerb"] == "prioritize" and ext["enableHTTPS"] is True


def test_this_projects_plugin_with_awss_extender_is_refused():
    error = render_error({"devicePlugin": {"implementation": "neuron-k8s"}}, implementation="aws")
    assert "AWS's extender keeps usage in its own node annotations" in error


def test_fake_mode_needs_this_projects_plugin():
    error = render_error(
        {"devicePlugin": {"fake": {"enabled": True, "instanceType": "inf2.xlarge"}}},
        implementation="aws",
    )
    assert "AWS's device plugin image has no fake-device mode" in error


def test_tls_with_awss_extender_is_refused():
    error = render_error({"extender": {"tls": {"mode": "chart"}}}, implementation="aws")
    assert "AWS's extender image serves plain HTTP only" in error


def test_the_notes_say_which_implementation_runs_and_warn_of_plain_http():
    from chartlib import notes

    text = notes(implementation=None)
    assert "AWS's extender image serves plain" in text
    assert "implementation: aws" in text
