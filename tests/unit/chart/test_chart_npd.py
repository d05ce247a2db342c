"""node-problem-detector (`npd`): on beside AWS's device plugin, which reads no kernel messages,
off beside this project's, which does; AWS's four Neuron hardware-error rules on the kernel
messages, on the device plugin's nodes, with the RBAC and the host paths it needs."""

import json

import pytest
from chartlib import container, objects_of, pod_spec, render, required_node_terms, workload
from dralib import DRA_LABEL

LABEL = "node-problem-detector"
ERRORS = [
    "SRAM_UNCORRECTABLE_ERROR",
    "NC_UNCORRECTABLE_ERROR",
    "HBM_UNCORRECTABLE_ERROR",
    "DMA_ERROR",
]


def npd_objects(objs):
    return [o for o in objs if o["metadata"]["labels"].get("app.kubernetes.io/component") == LABEL]


def daemonset(objs):
    (found,) = objects_of(objs, "DaemonSet", LABEL)
    return found


@pytest.fixture(scope="module")
def aws():
    return render(implementation="aws")


def kernel_monitor(objs):
    (configmap,) = objects_of(objs, "ConfigMap", LABEL)
    return json.loads(configmap["data"]["kernel-monitor.json"])


# ---- when it runs --------------------------------------------------------------------------------


def test_on_by_default_beside_awss_device_plugin(aws):
    assert daemonset(aws)["metadata"]["name"] == "neuron-node-problem-detector"


def test_off_by_default_beside_this_projects_device_plugin_which_reads_kernel_messages():
    assert npd_objects(render()) == []


@pytest.mark.parametrize(("implementation", "enabled"), [("aws", False), ("neuron-k8s", True)])
def test_the_value_forces_it_either_way(implementation, enabled):
    objs = render({"npd": {"enabled": enabled}}, implementation=implementation)
    assert bool(npd_objects(objs)) is enabled


def test_off_without_the_device_plugin():
    assert npd_objects(render({"devicePlugin": {"enabled": False}}, implementation="aws")) == []


def test_it_renders_its_account_rbac_config_policy_and_network_policy(aws):
    assert sorted((o["kind"], o["metadata"]["name"]) for o in npd_objects(aws)) == sorted(
        [
            ("ServiceAccount", "neuron-node-problem-detector"),
            ("ClusterRole", "neuron-node-problem-detector"),
            ("ClusterRoleBinding", "neuron-node-problem-detector"),
            ("ConfigMap", "neuron-node-problem-detector-config"),
            ("DaemonSet", "neuron-node-problem-detector"),
            ("NetworkPolicy", "neuron-node-problem-detector"),
            ("ValidatingAdmissionPolicy", "neuron-node-problem-detector-node-health"),
            ("ValidatingAdmissionPolicyBinding", "neuron-node-problem-detector-node-health"),
        ]
    )


# ---- its rules -----------------------------------------------------------------------------------


def test_the_kernel_monitor_reads_kmsg_into_the_neuron_health_condition(aws):
    config = kernel_monitor(aws)
    assert (config["plugin"], config["logPath"]) == ("kmsg", "/dev/kmsg")
    assert config["conditions"] == [
        {
            "type": "NeuronHealth",
            "reason": "NeuronHasNoError",
            "message": "Neuron devices have no hardware error",
        }
    ]


def test_one_permanent_rule_per_aws_hardware_error_as_awss_chart_names_them(aws):
    assert kernel_monitor(aws)["rules"] == [
        {
            "type": "permanent",
            "condition": "NeuronHealth",
            "reason": f"NeuronHasError_{error}",
            "pattern": f".* NEURON_HW_ERR={error} .*",
        }
        for error in ERRORS
    ]


def test_the_config_is_mounted_and_named_on_the_command_line(aws):
    ds = daemonset(aws)
    c = container(ds)
    assert "--config.system-log-monitor=/config/kernel-monitor.json" in c["command"]
    (config,) = [v for v in pod_spec(ds)["volumes"] if v["name"] == "config"]
    assert config["configMap"]["name"] == "neuron-node-problem-detector-config"
    assert {"name": "config", "mountPath": "/config", "readOnly": True} in c["volumeMounts"]


# ---- the DaemonSet -------------------------------------------------------------------------------


def test_the_image_is_upstreams_pinned_and_follows_the_global_registry(aws):
    image = "registry.k8s.io/node-problem-detector/node-problem-detector:v1.35.2"
    assert container(daemonset(aws))["image"] == image
    mirrored = render({"global": {"imageRegistry": "mirror.example.com"}}, implementation="aws")
    assert container(daemonset(mirrored))["image"] == (
        "mirror.example.com/node-problem-detector/node-problem-detector:v1.35.2"
    )


def test_it_reads_the_hosts_kmsg_privileged(aws):
    ds = daemonset(aws)
    volumes = {v["name"]: v for v in pod_spec(ds)["volumes"]}
    assert volumes["kmsg"]["hostPath"] == {"path": "/dev/kmsg", "type": "CharDevice"}
    assert volumes["localtime"]["hostPath"]["path"] == "/etc/localtime"
    c = container(ds)
    assert {"name": "kmsg", "mountPath": "/dev/kmsg", "readOnly": True} in c["volumeMounts"]
    assert c["securityContext"] == {"privileged": True, "readOnlyRootFilesystem": True}


def test_it_runs_on_the_device_plugins_nodes(aws):
    assert required_node_terms(daemonset(aws)) == required_node_terms(workload(aws, "devicePlugin"))
    assert pod_spec(daemonset(aws))["tolerations"] == [{"operator": "Exists"}]


def test_it_keeps_off_the_dra_nodes_as_the_device_plugin_does():
    values = {
        "npd": {"enabled": True},
        "dra": {"enabled": True, "nodeSelector": DRA_LABEL},
    }
    objs = render(values)
    terms = required_node_terms(daemonset(objs))
    assert terms == required_node_terms(workload(objs, "devicePlugin"))
    assert {"key": "neuron.k8s.local/dra", "operator": "NotIn", "values": ["true"]} in (
        terms[0]["matchExpressions"]
    )


def test_probes_call_healthz_on_the_pods_address(aws):
    c = container(daemonset(aws))
    assert "--address=0.0.0.0" in c["command"]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert c["ports"] == [{"name": "health", "containerPort": 20256, "protocol": "TCP"}]


def test_the_network_policy_admits_nothing(aws):
    (policy,) = objects_of(aws, "NetworkPolicy", LABEL)
    assert policy["spec"]["ingress"] == []
    assert (
        policy["spec"]["podSelector"]["matchLabels"]
        == (daemonset(aws)["spec"]["selector"]["matchLabels"])
    )


# ---- RBAC ----------------------------------------------------------------------------------------


def test_the_cluster_role_reads_its_node_writes_its_status_and_events(aws):
    (role,) = objects_of(aws, "ClusterRole", LABEL)
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["nodes/status"], "verbs": ["patch"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
    ]
    (binding,) = objects_of(aws, "ClusterRoleBinding", LABEL)
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": pod_spec(daemonset(aws))["serviceAccountName"],
         "namespace": "neuron-system"}
    ]  # fmt: skip
