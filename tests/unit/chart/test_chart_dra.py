"""The DRA driver (values block `dra`, templates/dra): its DaemonSet, RBAC, admission policy,
DeviceClass and NetworkPolicy; its fake-device mode; the refusals; and the rule that a node runs
either the device plugin or the DRA driver, never both."""

import pytest
from chartlib import (
    AUTO_MODE_OFF,
    CHART,
    container,
    env_of,
    mounts,
    notes,
    objects_of,
    one,
    pod_spec,
    render,
    render_error,
    required_node_terms,
    values_yaml,
    volumes,
    workload,
)
from dralib import ALONE, DRA_LABEL, FAKE_ENV, HOST_ENV, ON, daemonset, dra_objects, with_dra
from neuron_k8s.topology import INSTANCE_TYPES

# ---- off by default ---------------------------------------------------------------------------


def test_renders_nothing_when_disabled(default_objects):
    assert values_yaml()["dra"]["enabled"] is False
    assert dra_objects(default_objects) == []
    assert objects_of(default_objects, "DeviceClass") == []


def test_renders_every_object_of_the_driver_when_enabled(dra):
    assert sorted((o["kind"], o["metadata"]["name"]) for o in dra_objects(dra)) == sorted(
        [
            ("ServiceAccount", "neuron-dra"),
            ("ClusterRole", "neuron-dra"),
            ("ClusterRoleBinding", "neuron-dra"),
            ("ValidatingAdmissionPolicy", "neuron-dra"),
            ("ValidatingAdmissionPolicyBinding", "neuron-dra"),
            ("ValidatingAdmissionPolicy", "neuron-dra-node-health"),
            ("ValidatingAdmissionPolicyBinding", "neuron-dra-node-health"),
            ("DaemonSet", "neuron-dra"),
            ("NetworkPolicy", "neuron-dra"),
            ("Service", "neuron-dra-metrics"),
            ("DeviceClass", "neuron.aws.com"),
        ]
    )


def test_the_driver_alone_is_something_to_install():
    objs = render({**ALONE, "dra": {"enabled": True}})
    assert {o["kind"] for o in objs} >= {"DaemonSet", "DeviceClass"}
    # The helm test pod claims a device (test_chart_helm_test.py); nothing else runs.
    assert [o["kind"] for o in objs if o["kind"] in ("Deployment", "Pod")] == ["Pod"]


# ---- the DaemonSet ------------------------------------------------------------------------------


def test_runs_the_neuron_dra_driver_command(dra):
    c = container(one(dra, "DaemonSet", "dra"))
    assert c["name"] == "neuron-dra-driver"
    assert c["command"] == ["neuron-dra-driver"]
    assert "args" not in c


def test_node_name_and_pod_uid_come_from_the_downward_api(dra):
    env = env_of(one(dra, "DaemonSet", "dra"))
    assert env["NODE_NAME"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    assert env["POD_UID"] == {"fieldRef": {"fieldPath": "metadata.uid"}}


def test_driver_name_paths_port_and_log_level_env_defaults(dra):
    env = env_of(one(dra, "DaemonSet", "dra"))
    assert {k: v for k, v in env.items() if k not in {"NODE_NAME", "POD_UID", *HOST_ENV}} == {
        "NEURON_DRA_DRIVER_NAME": "neuron.aws.com",
        "NEURON_DRA_LOG_LEVEL": "info",
        "HEALTHCHECK_PORT": "51515",
        "KUBELET_REGISTRAR_DIRECTORY_PATH": "/var/lib/kubelet/plugins_registry",
        "KUBELET_PLUGINS_DIRECTORY_PATH": "/var/lib/kubelet/plugins",
        "CDI_ROOT": "/var/run/cdi",
        "NEURON_DRA_CORE_PARTITIONS": "false",
        "NEURON_DRA_CORE_SET_SIZES": "powers",
        "NEURON_DRA_UNHEALTHY_TAINT_EFFECT": "NoSchedule",
        "NEURON_DRA_POD_RESOURCES_SOCKET": "/var/lib/kubelet/pod-resources/kubelet.sock",
    }


def test_log_level_value():
    assert env_of(daemonset({"logLevel": "debug"}))["NEURON_DRA_LOG_LEVEL"] == "debug"


def test_registrar_directory_is_the_kubelets_own_and_must_exist(dra):
    obj = one(dra, "DaemonSet", "dra")
    assert volumes(obj)["plugins-registry"]["hostPath"] == {
        "path": "/var/lib/kubelet/plugins_registry",
        "type": "Directory",
    }
    assert mounts(obj)["plugins-registry"]["mountPath"] == "/var/lib/kubelet/plugins_registry"


def test_only_the_drivers_own_plugin_directory_is_mounted_created_if_missing(dra):
    obj = one(dra, "DaemonSet", "dra")
    assert volumes(obj)["plugin-dir"]["hostPath"] == {
        "path": "/var/lib/kubelet/plugins/neuron.aws.com",
        "type": "DirectoryOrCreate",
    }
    assert mounts(obj)["plugin-dir"]["mountPath"] == "/var/lib/kubelet/plugins/neuron.aws.com"
    paths = {v["hostPath"]["path"] for v in pod_spec(obj)["volumes"] if "hostPath" in v}
    assert "/var/lib/kubelet/plugins" not in paths


def test_cdi_root_is_mounted_created_if_missing(dra):
    obj = one(dra, "DaemonSet", "dra")
    assert volumes(obj)["cdi"]["hostPath"] == {"path": "/var/run/cdi", "type": "DirectoryOrCreate"}
    assert mounts(obj)["cdi"] == {"name": "cdi", "mountPath": "/var/run/cdi"}


def test_path_and_driver_name_values_move_mounts_and_env_together():
    obj = daemonset(
        {
            "driverName": "neuron.example.com",
            "registrarPath": "/var/lib/k0s/kubelet/plugins_registry",
            "pluginsPath": "/var/lib/k0s/kubelet/plugins",
            "cdiRoot": "/etc/cdi",
            "fake": {"enabled": True, "instanceType": "trn1.32xlarge"},  # no real-mode mounts
        }
    )
    env = env_of(obj)
    assert env["NEURON_DRA_DRIVER_NAME"] == "neuron.example.com"
    assert env["KUBELET_REGISTRAR_DIRECTORY_PATH"] == "/var/lib/k0s/kubelet/plugins_registry"
    assert env["KUBELET_PLUGINS_DIRECTORY_PATH"] == "/var/lib/k0s/kubelet/plugins"
    assert env["CDI_ROOT"] == "/etc/cdi"
    assert {n: m["mountPath"] for n, m in mounts(obj).items()} == {
        "plugins-registry": "/var/lib/k0s/kubelet/plugins_registry",
        "plugin-dir": "/var/lib/k0s/kubelet/plugins/neuron.example.com",
        "cdi": "/etc/cdi",
        "pod-resources": "/var/lib/kubelet/pod-resources",
        "opt-aws": "/opt/aws",
    }
    assert {n: v["hostPath"]["path"] for n, v in volumes(obj).items()} == {
        n: m["mountPath"] for n, m in mounts(obj).items()
    }


def test_the_kubelets_pod_resources_socket_is_mounted_read_only_and_named(dra):
    # dra/devicemanagersweep.py: the driver lists it so that the kubelet forgets the
    # device-plugin allocations of pods that are gone.
    obj = one(dra, "DaemonSet", "dra")
    path = "/var/lib/kubelet/pod-resources"
    assert volumes(obj)["pod-resources"]["hostPath"] == {"path": path, "type": "DirectoryOrCreate"}
    assert mounts(obj)["pod-resources"] == {
        "name": "pod-resources",
        "mountPath": path,
        "readOnly": True,
    }
    assert env_of(obj)["NEURON_DRA_POD_RESOURCES_SOCKET"] == f"{path}/kubelet.sock"


def test_an_empty_pod_resources_path_mounts_nothing_and_turns_the_lists_off():
    obj = daemonset({"podResourcesPath": ""})
    assert "pod-resources" not in volumes(obj)
    assert "pod-resources" not in mounts(obj)
    assert env_of(obj)["NEURON_DRA_POD_RESOURCES_SOCKET"] == ""


def test_opt_aws_mounted_read_only_like_the_device_plugins(dra):
    obj = one(dra, "DaemonSet", "dra")
    assert volumes(obj)["opt-aws"]["hostPath"] == {"path": "/opt/aws", "type": "DirectoryOrCreate"}
    assert mounts(obj)["opt-aws"] == {"name": "opt-aws", "mountPath": "/opt/aws", "readOnly": True}
    assert "opt-aws" not in volumes(daemonset({"awsDirPath": ""}))


def test_probes_call_healthz_and_readyz_on_the_health_port(dra):
    c = container(one(dra, "DaemonSet", "dra"))
    assert c["ports"] == [{"name": "health", "containerPort": 51515, "protocol": "TCP"}]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}


def test_health_port_value_moves_port_and_env():
    obj = daemonset({"healthPort": 9200})
    assert container(obj)["ports"][0]["containerPort"] == 9200
    assert env_of(obj)["HEALTHCHECK_PORT"] == "9200"


@pytest.mark.parametrize("probe", ["livenessProbe", "readinessProbe"])
def test_probe_timing(probe):
    timing = {"initialDelaySeconds": 30, "periodSeconds": 7, "timeoutSeconds": 3}
    rendered = container(daemonset({probe: timing}))[probe]
    assert timing.items() <= rendered.items()


def test_rolling_update_starts_the_new_pod_before_the_old_one_stops(dra):
    assert one(dra, "DaemonSet", "dra")["spec"]["updateStrategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }


def test_on_delete_update_strategy_leaves_out_rolling_update():
    obj = daemonset({"updateStrategy": {"type": "OnDelete"}})
    assert obj["spec"]["updateStrategy"] == {"type": "OnDelete"}


def test_priority_class_system_node_critical_by_default(dra):
    assert pod_spec(one(dra, "DaemonSet", "dra"))["priorityClassName"] == "system-node-critical"


def test_tolerates_every_taint_by_default(dra):
    assert pod_spec(one(dra, "DaemonSet", "dra"))["tolerations"] == [{"operator": "Exists"}]


def test_runs_as_root_without_privilege_unless_it_reads_a_kernel_message_device():
    obj = daemonset({"hostDevices": {"kernelMessages": ""}})  # /dev/kmsg: test_chart_host_devices
    assert pod_spec(obj)["securityContext"]["runAsUser"] == 0
    assert pod_spec(obj)["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container(obj)["securityContext"]
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security.get("privileged") is not True
    assert not any(pod_spec(obj).get(k) for k in ("hostNetwork", "hostPID", "hostIPC"))


def test_required_node_affinity_on_the_known_instance_types_off_auto_mode_nodes(dra):
    # The device plugin's default list moved into the chart (it follows the implementation since
    # AWS's plugin runs on more types); the driver keeps the types this project knows.
    assert values_yaml()["dra"]["instanceTypes"] == list(INSTANCE_TYPES)
    assert required_node_terms(one(dra, "DaemonSet", "dra")) == [
        {
            "matchExpressions": [
                {
                    "key": "node.kubernetes.io/instance-type",
                    "operator": "In",
                    "values": list(INSTANCE_TYPES),
                },
                AUTO_MODE_OFF,
            ]
        }
    ]


def test_empty_instance_types_leave_only_the_compute_type_exclusion():
    assert required_node_terms(daemonset({"instanceTypes": []})) == [
        {"matchExpressions": [AUTO_MODE_OFF]}
    ]


def test_empty_instance_types_and_compute_types_drop_the_affinity():
    assert "affinity" not in pod_spec(daemonset({"instanceTypes": [], "excludedComputeTypes": []}))


def test_node_selector_picks_the_dra_nodes(dra):
    assert pod_spec(one(dra, "DaemonSet", "dra"))["nodeSelector"] == DRA_LABEL


def test_resources_value():
    resources = {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}
    assert container(daemonset({"resources": resources}))["resources"] == resources


def test_pod_labels_carry_the_component_but_no_versions(dra):
    obj = one(dra, "DaemonSet", "dra")
    labels = obj["spec"]["template"]["metadata"]["labels"]
    assert obj["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "neuron",
        "app.kubernetes.io/instance": "neuron",
        "app.kubernetes.io/component": "dra",
    }
    assert obj["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert not {"helm.sh/chart", "app.kubernetes.io/version"} & set(labels)


def test_fullname_override_names_every_object_but_the_device_class():
    objs = with_dra({"fullnameOverride": "neuron-dra-kubelet-plugin"})
    names = {o["metadata"]["name"] for o in dra_objects(objs) if o["kind"] != "DeviceClass"}
    assert names == {
        "neuron-dra-kubelet-plugin",
        "neuron-dra-kubelet-plugin-metrics",
        "neuron-dra-kubelet-plugin-node-health",
    }


def test_an_existing_service_account_is_used_as_named():
    objs = with_dra({"serviceAccount": {"create": False, "name": "existing"}})
    assert objects_of(objs, "ServiceAccount", "dra") == []
    assert pod_spec(one(objs, "DaemonSet", "dra"))["serviceAccountName"] == "existing"
    assert one(objs, "ClusterRoleBinding", "dra")["subjects"][0]["name"] == "existing"


# ---- the NetworkPolicy ------------------------------------------------------


def test_network_policy_admits_only_the_health_and_metrics_port_to_the_driver(dra):
    spec = one(dra, "NetworkPolicy", "dra")["spec"]
    assert (
        spec["podSelector"]["matchLabels"]
        == (one(dra, "DaemonSet", "dra")["spec"]["selector"]["matchLabels"])
    )
    assert spec["policyTypes"] == ["Ingress"]
    assert spec["ingress"] == [{"ports": [{"port": "health", "protocol": "TCP"}]}]
    assert objects_of(with_dra({"networkPolicy": {"enabled": False}}), "NetworkPolicy", "dra") == []


def test_network_policy_admits_metrics_from_the_namespaces_selected():
    selector = {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
    objs = with_dra({"networkPolicy": {"metricsNamespaceSelector": selector}})
    (rule,) = one(objs, "NetworkPolicy", "dra")["spec"]["ingress"]
    assert rule["from"] == [{"namespaceSelector": selector}]


def test_the_health_port_is_a_named_container_port_the_policy_can_name(dra):
    (port,) = container(one(dra, "DaemonSet", "dra"))["ports"]
    assert port == {"name": "health", "containerPort": 51515, "protocol": "TCP"}


# ---- the schema ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "where", "key"),
    [
        ("dra.nodeSelectorr.a=b", "/dra", "nodeSelectorr"),
        ("dra.fake.devices=2", "/dra/fake", "devices"),
        ("dra.deviceClasses.name=x", "/dra/deviceClasses", "name"),
        ("dra.networkPolicy.ports=1", "/dra/networkPolicy", "ports"),
    ],
)
def test_schema_refuses_an_unknown_dra_key_by_name(setting, where, key):
    error = render_error(set_values=[setting])
    assert "values don't meet the specifications of the schema" in error
    assert f"at '{where}'" in error
    assert f"additional properties '{key}'" in error


@pytest.mark.parametrize(
    ("setting", "where"),
    [
        ("dra.driverName=Neuron_AWS", "/dra/driverName"),
        ("dra.healthPort=70000", "/dra/healthPort"),
        ("dra.pluginsPath=relative", "/dra/pluginsPath"),
        ("dra.logLevel=trace", "/dra/logLevel"),
        ("dra.implementation=other", "/dra/implementation"),
        ("dra.enabled=yes", "/dra/enabled"),
    ],
)
def test_schema_refuses_a_malformed_dra_value(setting, where):
    assert f"at '{where}'" in render_error(set_values=[setting])


# ---- notes and examples -------------------------------------------------------------------------


def test_notes_list_the_dra_driver_and_its_nodes():
    text = notes({"dra": ON})
    assert "DRA driver      DaemonSet neuron-dra, driver neuron.aws.com (neuron-k8s:0.1.0)" in text
    assert "on the nodes labelled neuron.k8s.local/dra=true (the device plugin keeps off them)" in (
        text
    )
    assert "kubectl get resourceslices --field-selector spec.driver=neuron.aws.com" in text


def test_notes_without_the_driver_do_not_mention_it():
    assert "DRA" not in notes()


def test_eks_dra_example_runs_the_real_driver_alone():
    objs = render(files=["eks-dra.yaml"])
    assert [o["kind"] for o in objs if o["kind"] in ("Deployment", "Pod")] == ["Pod"]  # helm test
    assert [o["metadata"]["name"] for o in objs if o["kind"] == "DaemonSet"] == ["neuron-dra"]
    obj = one(objs, "DaemonSet", "dra")
    # The example's placeholders, filled in (chartlib.filled_example).
    assert container(obj)["image"] == (
        "111122223333.dkr.ecr.us-west-2.amazonaws.com/neuron-k8s:0.1.0"
    )
    assert not FAKE_ENV & env_of(obj).keys()
    assert one(objs, "DeviceClass", "dra")["metadata"]["name"] == "neuron.aws.com"


def test_eks_dra_example_with_awss_images_is_refused():
    error = render_error(files=["eks-dra.yaml"], set_values=["implementation=aws"])
    assert "the chart does not run AWS's DRA driver image" in error


@pytest.fixture(scope="module")
def kind_objects():
    return render(files=["kind.yaml"])


def test_kind_runs_the_fake_driver_on_the_dra_worker_only(kind_objects):
    obj = one(kind_objects, "DaemonSet", "dra")
    assert pod_spec(obj)["nodeSelector"] == DRA_LABEL
    env = env_of(obj)
    assert env["NEURON_DRA_FAKE_INSTANCE_TYPE_LABEL"] == "node.kubernetes.io/instance-type"
    assert env["NEURON_DRA_FAKE_HEALTH_FILE"] == "/var/lib/neuron-fake/unhealthy"
    assert "trn1.32xlarge" in required_node_terms(obj)[0]["matchExpressions"][0]["values"]
    assert container(obj)["image"] == "neuron-k8s:0.1.0"
    assert container(obj)["imagePullPolicy"] == "Never"


def test_kind_keeps_the_device_plugin_off_the_dra_worker(kind_objects):
    (term,) = required_node_terms(workload(kind_objects, "devicePlugin"))
    assert {"key": "neuron.k8s.local/dra", "operator": "NotIn", "values": ["true"]} in (
        term["matchExpressions"]
    )


def test_kind_driver_resources_are_small(kind_objects):
    requests = container(one(kind_objects, "DaemonSet", "dra"))["resources"]["requests"]
    assert requests["cpu"].endswith("m") and int(requests["cpu"][:-1]) <= 50


def test_ci_case_runs_the_driver_beside_the_device_plugin():
    objs = render(files=[CHART / "ci" / "dra-values.yaml"])
    assert pod_spec(one(objs, "DaemonSet", "dra"))["nodeSelector"] == DRA_LABEL
    assert env_of(one(objs, "DaemonSet", "dra"))["NEURON_DRA_FAKE_INSTANCE_TYPE"] == (
        "trn1.32xlarge"
    )
    assert workload(objs, "devicePlugin")
