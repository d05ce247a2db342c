"""The device plugin DaemonSet, its RBAC, the fake-device mode and its validation."""

import pytest
from chartlib import (
    AUTO_MODE_OFF,
    container,
    env_of,
    mounts,
    one,
    pod_spec,
    render,
    render_error,
    required_node_terms,
    values_yaml,
    volumes,
    workload,
)

DEFAULT_INSTANCE_TYPES = [
    "inf1.xlarge",
    "inf1.2xlarge",
    "inf1.6xlarge",
    "inf1.24xlarge",
    "inf2.xlarge",
    "inf2.8xlarge",
    "inf2.24xlarge",
    "inf2.48xlarge",
    "trn1.2xlarge",
    "trn1.32xlarge",
    "trn1n.32xlarge",
    "trn2.48xlarge",
    "trn2u.48xlarge",
]
FAKE_ENV = {
    "NEURON_DP_FAKE_INSTANCE_TYPE",
    "NEURON_DP_FAKE_DEVICES",
    "NEURON_DP_FAKE_CORES_PER_DEVICE",
    "NEURON_DP_FAKE_INSTANCE_TYPE_LABEL",
    "NEURON_DP_FAKE_HEALTH_FILE",
}


def daemonset(values=None):
    return workload(render({"devicePlugin": values or {}}), "devicePlugin")


def fake(**settings):
    return daemonset({"fake": {"enabled": True, **settings}})


def test_runs_neuron_device_plugin_command(default_objects):
    assert container(workload(default_objects, "devicePlugin"))["command"] == [
        "neuron-device-plugin"
    ]


def test_node_name_from_downward_api(default_objects):
    env = env_of(workload(default_objects, "devicePlugin"))
    assert env["NODE_NAME"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}


def test_priority_class_system_node_critical_by_default(default_objects):
    assert pod_spec(workload(default_objects, "devicePlugin"))["priorityClassName"] == (
        "system-node-critical"
    )


def test_tolerates_every_taint_by_default(default_objects):
    tolerations = pod_spec(workload(default_objects, "devicePlugin"))["tolerations"]
    assert tolerations == [{"operator": "Exists"}]


def test_the_tolerations_can_be_narrowed():
    narrow = [{"key": "aws.amazon.com/neuron", "operator": "Exists", "effect": "NoSchedule"}]
    objs = render({"devicePlugin": {"tolerations": narrow}})
    assert pod_spec(workload(objs, "devicePlugin"))["tolerations"] == narrow


def test_runs_as_root_without_capabilities_unless_it_reads_a_kernel_message_device():
    # The default /dev/kmsg makes it privileged: test_chart_host_devices.py.
    obj = daemonset({"hostDevices": {"kernelMessages": ""}})
    assert pod_spec(obj)["securityContext"]["runAsUser"] == 0
    assert container(obj)["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container(obj)["securityContext"]["allowPrivilegeEscalation"] is False


def test_device_plugin_dir_is_a_typed_host_path(default_objects):
    obj = workload(default_objects, "devicePlugin")
    assert volumes(obj)["device-plugin"]["hostPath"] == {
        "path": "/var/lib/kubelet/device-plugins",
        "type": "Directory",
    }
    assert mounts(obj)["device-plugin"]["mountPath"] == "/var/lib/kubelet/device-plugins"
    assert env_of(obj)["NEURON_DP_DEVICE_PLUGIN_DIR"] == "/var/lib/kubelet/device-plugins"


def test_device_plugin_path_value_moves_mount_and_flag():
    obj = daemonset({"devicePluginPath": "/var/lib/k0s/kubelet/device-plugins"})
    assert volumes(obj)["device-plugin"]["hostPath"]["path"] == (
        "/var/lib/k0s/kubelet/device-plugins"
    )
    assert mounts(obj)["device-plugin"]["mountPath"] == "/var/lib/k0s/kubelet/device-plugins"
    assert env_of(obj)["NEURON_DP_DEVICE_PLUGIN_DIR"] == "/var/lib/k0s/kubelet/device-plugins"


def test_pod_resources_dir_mounted_read_only_by_default(default_objects):
    obj = workload(default_objects, "devicePlugin")
    assert volumes(obj)["pod-resources"]["hostPath"] == {
        "path": "/var/lib/kubelet/pod-resources",
        "type": "DirectoryOrCreate",
    }
    assert mounts(obj)["pod-resources"]["readOnly"] is True


def test_pod_resources_socket_env_points_into_the_mount(default_objects):
    env = env_of(workload(default_objects, "devicePlugin"))
    assert env["NEURON_DP_POD_RESOURCES_SOCKET"] == "/var/lib/kubelet/pod-resources/kubelet.sock"


def test_empty_pod_resources_path_drops_the_mount_and_the_socket():
    obj = daemonset({"podResourcesPath": ""})
    assert "pod-resources" not in volumes(obj)
    assert "pod-resources" not in mounts(obj)
    assert "NEURON_DP_POD_RESOURCES_SOCKET" not in env_of(obj)
    assert container(obj)["args"] == ["--pod-resources-socket="]


def test_extra_args_follow_the_pod_resources_switch():
    obj = daemonset({"podResourcesPath": "", "extraArgs": ["--dev-root=/host/dev"]})
    assert container(obj)["args"] == ["--pod-resources-socket=", "--dev-root=/host/dev"]


def test_opt_aws_mounted_read_only_for_lnc_config(default_objects):
    obj = workload(default_objects, "devicePlugin")
    assert volumes(obj)["opt-aws"]["hostPath"] == {"path": "/opt/aws", "type": "DirectoryOrCreate"}
    assert mounts(obj)["opt-aws"] == {"name": "opt-aws", "mountPath": "/opt/aws", "readOnly": True}


def test_empty_aws_dir_path_drops_the_mount():
    obj = daemonset({"awsDirPath": ""})
    assert "opt-aws" not in volumes(obj)


def test_http_port_is_a_container_port_probed_on_health_paths(default_objects):
    c = container(workload(default_objects, "devicePlugin"))
    assert c["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert env_of(workload(default_objects, "devicePlugin"))["NEURON_DP_HTTP_PORT"] == "8080"


def test_http_port_value():
    obj = daemonset({"httpPort": 9100})
    assert container(obj)["ports"][0]["containerPort"] == 9100
    assert env_of(obj)["NEURON_DP_HTTP_PORT"] == "9100"


def test_log_level_default_info(default_objects):
    assert env_of(workload(default_objects, "devicePlugin"))["NEURON_DP_LOG_LEVEL"] == "info"


def test_log_level_value():
    assert env_of(daemonset({"logLevel": "debug"}))["NEURON_DP_LOG_LEVEL"] == "debug"


def test_default_instance_types_follow_the_implementation():
    # Changed from one list for both: AWS's plugin runs on AWS's chart 1.10 list (ml.*, trn3...),
    # which this project's topology table does not cover (test_chart_aws_golden.py).
    assert values_yaml()["devicePlugin"]["instanceTypes"] is None
    aws = required_node_terms(workload(render(implementation="aws"), "devicePlugin"))
    assert "ml.trn1.32xlarge" in aws[0]["matchExpressions"][0]["values"]
    assert "ml.trn1.32xlarge" not in DEFAULT_INSTANCE_TYPES


def test_required_node_affinity_on_default_instance_types(default_objects):
    terms = required_node_terms(workload(default_objects, "devicePlugin"))
    assert terms == [
        {
            "matchExpressions": [
                {
                    "key": "node.kubernetes.io/instance-type",
                    "operator": "In",
                    "values": DEFAULT_INSTANCE_TYPES,
                },
                AUTO_MODE_OFF,
            ]
        }
    ]


def test_instance_type_label_key_override():
    terms = required_node_terms(
        daemonset({"instanceTypeLabel": "beta.kubernetes.io/instance-type"})
    )
    assert terms[0]["matchExpressions"][0]["key"] == "beta.kubernetes.io/instance-type"


def test_instance_types_override():
    terms = required_node_terms(daemonset({"instanceTypes": ["inf2.xlarge"]}))
    assert terms[0]["matchExpressions"][0]["values"] == ["inf2.xlarge"]


def test_empty_instance_types_leave_only_the_compute_type_exclusion():
    assert required_node_terms(daemonset({"instanceTypes": []})) == [
        {"matchExpressions": [AUTO_MODE_OFF]}
    ]


def test_empty_instance_types_and_compute_types_drop_the_affinity():
    obj = daemonset({"instanceTypes": [], "excludedComputeTypes": []})
    assert "affinity" not in pod_spec(obj)


def test_excluded_compute_types_can_be_changed():
    (term,) = required_node_terms(daemonset({"excludedComputeTypes": ["auto"]}))
    assert term["matchExpressions"][-1] == {
        "key": "eks.amazonaws.com/compute-type",
        "operator": "NotIn",
        "values": ["auto"],
    }


def test_user_node_affinity_replaces_instance_type_affinity():
    node_affinity = {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "neuron", "operator": "Exists"}]}]
        }
    }
    obj = daemonset({"affinity": {"nodeAffinity": node_affinity}})
    # The compute-type exclusion is kept in every given term (Auto Mode nodes run AWS's plugin).
    (term,) = required_node_terms(obj)
    assert term["matchExpressions"] == [{"key": "neuron", "operator": "Exists"}, AUTO_MODE_OFF]


def test_user_pod_affinity_keeps_instance_type_affinity():
    pod_affinity = {
        "requiredDuringSchedulingIgnoredDuringExecution": [
            {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"a": "b"}}}
        ]
    }
    obj = daemonset({"affinity": {"podAffinity": pod_affinity}})
    affinity = pod_spec(obj)["affinity"]
    assert affinity["podAffinity"] == pod_affinity
    assert required_node_terms(obj)[0]["matchExpressions"][0]["values"] == DEFAULT_INSTANCE_TYPES


def test_node_selector_keeps_instance_type_affinity():
    obj = daemonset({"nodeSelector": {"pool": "neuron"}})
    assert pod_spec(obj)["nodeSelector"] == {"pool": "neuron"}
    assert required_node_terms(obj)


def test_daemonset_name_override_leaves_other_names():
    objs = render({"devicePlugin": {"daemonSetNameOverride": "neuron-ds"}})
    assert workload(objs, "devicePlugin")["metadata"]["name"] == "neuron-ds"
    assert one(objs, "ClusterRole", "devicePlugin")["metadata"]["name"] == "neuron-device-plugin"


def test_cluster_role_rules(default_objects):
    rules = one(default_objects, "ClusterRole", "devicePlugin")["rules"]
    assert rules == [
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "patch"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch", "patch"]},
        {"apiGroups": [""], "resources": ["nodes/status"], "verbs": ["patch"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
    ]


def test_cluster_role_binding_binds_role_to_service_account(default_objects):
    binding = one(default_objects, "ClusterRoleBinding", "devicePlugin")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "neuron-device-plugin",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "neuron-device-plugin", "namespace": "neuron-system"}
    ]


# ---- fake-device mode ---------------------------------------------------------------------


def test_fake_mode_off_by_default_sets_no_fake_env(default_objects):
    assert not FAKE_ENV & env_of(workload(default_objects, "devicePlugin")).keys()


def test_fake_instance_type_env():
    env = env_of(fake(instanceType="inf2.48xlarge"))
    assert env["NEURON_DP_FAKE_INSTANCE_TYPE"] == "inf2.48xlarge"
    assert FAKE_ENV & env.keys() == {"NEURON_DP_FAKE_INSTANCE_TYPE"}


def test_fake_devices_and_cores_per_device_env():
    env = env_of(fake(devices=4, coresPerDevice=2))
    assert env["NEURON_DP_FAKE_DEVICES"] == "4"
    assert env["NEURON_DP_FAKE_CORES_PER_DEVICE"] == "2"
    assert FAKE_ENV & env.keys() == {"NEURON_DP_FAKE_DEVICES", "NEURON_DP_FAKE_CORES_PER_DEVICE"}


def test_fake_instance_type_label_env():
    env = env_of(fake(instanceTypeLabel="node.kubernetes.io/instance-type"))
    assert env["NEURON_DP_FAKE_INSTANCE_TYPE_LABEL"] == "node.kubernetes.io/instance-type"


def test_fake_health_file_env_and_host_directory_mount():
    obj = fake(instanceType="trn1.2xlarge", healthFile="/var/lib/neuron-fake/unhealthy")
    assert env_of(obj)["NEURON_DP_FAKE_HEALTH_FILE"] == "/var/lib/neuron-fake/unhealthy"
    assert volumes(obj)["fake-health"]["hostPath"] == {
        "path": "/var/lib/neuron-fake",
        "type": "DirectoryOrCreate",
    }
    assert mounts(obj)["fake-health"] == {
        "name": "fake-health",
        "mountPath": "/var/lib/neuron-fake",
        "readOnly": True,
    }


def test_no_health_mount_without_health_file():
    assert "fake-health" not in volumes(fake(instanceType="trn1.2xlarge"))


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"instanceType": "inf2.xlarge", "instanceTypeLabel": "node.kubernetes.io/instance-type"},
        {"instanceType": "inf2.xlarge", "devices": 1, "coresPerDevice": 2},
        {"instanceTypeLabel": "x", "devices": 1, "coresPerDevice": 2},
    ],
    ids=["none", "type+label", "type+devices", "label+devices"],
)
def test_fake_mode_needs_exactly_one_hardware_choice(settings):
    error = render_error({"devicePlugin": {"fake": {"enabled": True, **settings}}})
    assert "devicePlugin.fake.enabled=true needs exactly one way" in error


@pytest.mark.parametrize("settings", [{"devices": 2}, {"coresPerDevice": 2}])
def test_fake_devices_and_cores_per_device_go_together(settings):
    error = render_error({"devicePlugin": {"fake": {"enabled": True, **settings}}})
    assert "devicePlugin.fake.devices and devicePlugin.fake.coresPerDevice go together" in error


@pytest.mark.parametrize(
    "settings",
    [{"instanceType": "inf2.xlarge"}, {"devices": 1, "coresPerDevice": 2}, {"healthFile": "/a/b"}],
)
def test_fake_settings_without_fake_enabled_are_refused(settings):
    error = render_error({"devicePlugin": {"fake": settings}})
    assert "devicePlugin.fake.enabled is false" in error


def test_fake_health_file_must_be_absolute():
    error = render_error(
        {"devicePlugin": {"fake": {"enabled": True, "instanceType": "a", "healthFile": "x/y"}}}
    )
    assert "must be an absolute path" in error


@pytest.mark.parametrize("path", ["/unhealthy", "/var/lib/neuron-fake/"])
def test_fake_health_file_must_be_a_file_below_a_directory(path):
    error = render_error(
        {"devicePlugin": {"fake": {"enabled": True, "instanceType": "a", "healthFile": path}}}
    )
    assert "must name a file inside a directory other than /" in error


def test_nothing_is_withheld_beside_the_charts_extender_and_scheduler(default_objects):
    env = env_of(workload(default_objects, "devicePlugin"))
    assert env["NEURON_DP_WITHHOLD_IN_USE"] == "false"


@pytest.mark.parametrize("off", ["extender", "scheduler"])
def test_ids_held_through_the_other_resource_are_withheld_without_the_extender(off):
    values = {off: {"enabled": False}}
    if off == "extender":
        values["scheduler"] = {"enabled": False}
    env = env_of(workload(render(values), "devicePlugin"))
    assert env["NEURON_DP_WITHHOLD_IN_USE"] == "true"


@pytest.mark.parametrize("value", [True, False])
def test_withholding_can_be_set_either_way(value):
    env = env_of(daemonset({"withholdInUse": value}))
    assert env["NEURON_DP_WITHHOLD_IN_USE"] == str(value).lower()


def test_withholding_takes_only_auto_true_or_false():
    assert "withholdInUse" in render_error({"devicePlugin": {"withholdInUse": "sometimes"}})
