"""The DRA driver (values block `dra`, templates/dra): its DaemonSet, RBAC, admission policy,
DeviceClass and NetworkPolicy; its fake-device mode; the refusals; and the rule that a node runs
either the device plugin or the DRA driver, never both."""

import pytest
from chartlib import (
    CHART,
    container,
    env_of,
    merge,
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
from neuron_k8s.topology import INSTANCE_TYPES

DRA_LABEL = {"neuron.k8s.local/dra": "true"}
# Beside the device plugin, which then needs dra.nodeSelector.
ON = {"enabled": True, "nodeSelector": DRA_LABEL}
ALONE = {
    "devicePlugin": {"enabled": False},
    "extender": {"enabled": False},
    "scheduler": {"enabled": False},
}
FAKE_ENV = {
    "NEURON_DRA_FAKE_INSTANCE_TYPE",
    "NEURON_DRA_FAKE_INSTANCE_TYPE_LABEL",
    "NEURON_DRA_FAKE_HEALTH_FILE",
}


def with_dra(block=None, **others):
    """Render with the DRA driver on (beside the device plugin) and `block` merged into `dra`."""
    return render({"dra": merge(ON, block or {}), **others})


def daemonset(block=None, **others):
    return one(with_dra(block, **others), "DaemonSet", "dra")


def fake(**settings):
    return daemonset({"fake": {"enabled": True, **settings}})


def dra_objects(objs):
    return [o for o in objs if o["metadata"]["labels"].get("app.kubernetes.io/component") == "dra"]


@pytest.fixture(scope="module")
def dra():
    return with_dra()


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
            ("DaemonSet", "neuron-dra"),
            ("NetworkPolicy", "neuron-dra"),
            ("Service", "neuron-dra-metrics"),
            ("DeviceClass", "neuron.aws.com"),
        ]
    )


def test_the_driver_alone_is_something_to_install():
    objs = render({**ALONE, "dra": {"enabled": True}})
    assert {o["kind"] for o in objs} >= {"DaemonSet", "DeviceClass"}
    assert [o for o in objs if o["kind"] in ("Deployment", "Pod")] == []


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
    assert {k: v for k, v in env.items() if k not in ("NODE_NAME", "POD_UID")} == {
        "NEURON_DRA_DRIVER_NAME": "neuron.aws.com",
        "NEURON_DRA_LOG_LEVEL": "info",
        "HEALTHCHECK_PORT": "51515",
        "KUBELET_REGISTRAR_DIRECTORY_PATH": "/var/lib/kubelet/plugins_registry",
        "KUBELET_PLUGINS_DIRECTORY_PATH": "/var/lib/kubelet/plugins",
        "CDI_ROOT": "/var/run/cdi",
        "NEURON_DRA_CORE_PARTITIONS": "false",
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
        "opt-aws": "/opt/aws",
    }
    assert {n: v["hostPath"]["path"] for n, v in volumes(obj).items()} == {
        n: m["mountPath"] for n, m in mounts(obj).items()
    }


def test_opt_aws_mounted_read_only_like_the_device_plugins(dra):
    obj = one(dra, "DaemonSet", "dra")
    assert volumes(obj)["opt-aws"]["hostPath"] == {"path": "/opt/aws", "type": "DirectoryOrCreate"}
    assert mounts(obj)["opt-aws"] == {"name": "opt-aws", "mountPath": "/opt/aws", "readOnly": True}
    assert "opt-aws" not in volumes(daemonset({"awsDirPath": ""}))


def test_dev_and_the_host_root_are_not_mounted(dra):
    obj = one(dra, "DaemonSet", "dra")
    paths = {v["hostPath"]["path"] for v in pod_spec(obj)["volumes"] if "hostPath" in v}
    assert not paths & {"/dev", "/sys", "/run", "/var/run", "/"}


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


def test_runs_as_root_without_privilege_or_capabilities(dra):
    obj = one(dra, "DaemonSet", "dra")
    assert pod_spec(obj)["securityContext"]["runAsUser"] == 0
    assert pod_spec(obj)["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container(obj)["securityContext"]
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security.get("privileged") is not True
    assert not any(pod_spec(obj).get(k) for k in ("hostNetwork", "hostPID", "hostIPC"))


def test_required_node_affinity_on_the_device_plugins_instance_types(dra):
    assert values_yaml()["dra"]["instanceTypes"] == values_yaml()["devicePlugin"]["instanceTypes"]
    assert required_node_terms(one(dra, "DaemonSet", "dra")) == [
        {
            "matchExpressions": [
                {
                    "key": "node.kubernetes.io/instance-type",
                    "operator": "In",
                    "values": list(INSTANCE_TYPES),
                }
            ]
        }
    ]


def test_empty_instance_types_drop_the_affinity():
    assert "affinity" not in pod_spec(daemonset({"instanceTypes": []}))


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
    assert names == {"neuron-dra-kubelet-plugin", "neuron-dra-kubelet-plugin-metrics"}


def test_an_existing_service_account_is_used_as_named():
    objs = with_dra({"serviceAccount": {"create": False, "name": "existing"}})
    assert objects_of(objs, "ServiceAccount", "dra") == []
    assert pod_spec(one(objs, "DaemonSet", "dra"))["serviceAccountName"] == "existing"
    assert one(objs, "ClusterRoleBinding", "dra")["subjects"][0]["name"] == "existing"


# ---- the image ----------------------------------------------------------------------------------


def test_image_defaults_to_the_neuron_k8s_image_of_the_app_version(dra):
    c = container(one(dra, "DaemonSet", "dra"))
    assert c["image"] == "neuron-k8s:0.1.0"
    assert c["imagePullPolicy"] == "IfNotPresent"


def test_global_image_registry_prefixes_the_image():
    obj = daemonset(**{"global": {"imageRegistry": "mirror.example.com/cache"}})
    assert container(obj)["image"] == "mirror.example.com/cache/neuron-k8s:0.1.0"


def test_global_image_registry_replaces_the_repositorys_registry():
    obj = daemonset(
        {"image": {"repository": "123456789012.dkr.ecr.us-west-2.amazonaws.com/neuron-k8s"}},
        **{"global": {"imageRegistry": "mirror.example.com"}},
    )
    assert container(obj)["image"] == "mirror.example.com/neuron-k8s:0.1.0"


def test_image_digest_pins_the_image_instead_of_the_tag():
    digest = "sha256:" + "ab" * 32
    obj = daemonset({"image": {"repository": "reg.example/nk", "tag": "9", "digest": digest}})
    assert container(obj)["image"] == f"reg.example/nk@{digest}"


def test_image_pull_secrets_add_to_the_global_ones():
    obj = daemonset(
        {"imagePullSecrets": [{"name": "dra"}]},
        **{"global": {"imagePullSecrets": [{"name": "all"}]}},
    )
    assert pod_spec(obj)["imagePullSecrets"] == [{"name": "all"}, {"name": "dra"}]


def test_this_projects_driver_beside_awss_device_plugin_keeps_its_image():
    values = {"dra": merge(ON, {"implementation": "neuron-k8s"})}
    objs = render(values, implementation="aws")
    assert container(one(objs, "DaemonSet", "dra"))["image"] == "neuron-k8s:0.1.0"
    plugin = container(workload(objs, "devicePlugin"))["image"]
    assert plugin.startswith("public.ecr.aws/neuron/neuron-device-plugin:")


def test_awss_dra_driver_is_refused_with_a_sentence():
    error = render_error({"dra": ON}, implementation="aws")
    assert "the chart does not run AWS's DRA driver image" in error
    assert "Set dra.implementation=neuron-k8s" in error


def test_a_cluster_older_than_1_34_is_refused_with_a_sentence():
    error = render_error({"dra": ON}, kube_version="v1.33.5")
    assert "dra.enabled=true needs Kubernetes 1.34 or newer" in error
    assert "this cluster is v1.33.5" in error


# ---- fake-device mode ---------------------------------------------------------------------------


def test_fake_mode_off_by_default_sets_no_fake_env(dra):
    assert not FAKE_ENV & env_of(one(dra, "DaemonSet", "dra")).keys()
    assert "fake-health" not in volumes(one(dra, "DaemonSet", "dra"))


def test_fake_instance_type_env():
    env = env_of(fake(instanceType="trn1.32xlarge"))
    assert env["NEURON_DRA_FAKE_INSTANCE_TYPE"] == "trn1.32xlarge"
    assert FAKE_ENV & env.keys() == {"NEURON_DRA_FAKE_INSTANCE_TYPE"}


def test_fake_instance_type_label_env():
    env = env_of(fake(instanceTypeLabel="node.kubernetes.io/instance-type"))
    assert env["NEURON_DRA_FAKE_INSTANCE_TYPE_LABEL"] == "node.kubernetes.io/instance-type"
    assert FAKE_ENV & env.keys() == {"NEURON_DRA_FAKE_INSTANCE_TYPE_LABEL"}


def test_fake_health_file_env_and_host_directory_mount():
    obj = fake(instanceType="trn1.2xlarge", healthFile="/var/lib/neuron-fake/unhealthy")
    assert env_of(obj)["NEURON_DRA_FAKE_HEALTH_FILE"] == "/var/lib/neuron-fake/unhealthy"
    assert volumes(obj)["fake-health"]["hostPath"] == {
        "path": "/var/lib/neuron-fake",
        "type": "DirectoryOrCreate",
    }
    assert mounts(obj)["fake-health"] == {
        "name": "fake-health",
        "mountPath": "/var/lib/neuron-fake",
        "readOnly": True,
    }


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        ({}, "none is set"),
        ({"instanceType": "trn1.2xlarge", "instanceTypeLabel": "x"}, "both are set"),
    ],
    ids=["none", "both"],
)
def test_fake_mode_needs_exactly_one_hardware_choice(settings, reason):
    error = render_error({"dra": merge(ON, {"fake": {"enabled": True, **settings}})})
    assert "dra.fake.enabled=true needs exactly one way to choose the fake hardware" in error
    assert reason in error


@pytest.mark.parametrize("settings", [{"instanceType": "trn1.2xlarge"}, {"healthFile": "/a/b"}])
def test_fake_settings_without_fake_enabled_are_refused(settings):
    error = render_error({"dra": merge(ON, {"fake": settings})})
    assert "dra.fake settings are given but dra.fake.enabled is false" in error


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("relative/unhealthy", "must be an absolute path"),
        ("/unhealthy", "must name a file inside a directory other than /"),
        ("/var/lib/neuron-fake/", "must name a file inside a directory other than /"),
    ],
)
def test_fake_health_file_must_be_a_file_below_a_host_directory(path, reason):
    block = {"fake": {"enabled": True, "instanceType": "trn1.2xlarge", "healthFile": path}}
    assert reason in render_error({"dra": merge(ON, block)})


# ---- RBAC ---------------------------------------------------------------------------------------


def test_cluster_role_has_exactly_the_calls_of_the_driver(dra):
    assert one(dra, "ClusterRole", "dra")["rules"] == [
        {
            "apiGroups": ["resource.k8s.io"],
            "resources": ["resourceslices"],
            "verbs": ["list", "create", "update", "delete"],
        },
        {
            "apiGroups": ["resource.k8s.io"],
            "resources": ["resourceclaims"],
            "verbs": ["list", "watch"],
        },
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]},
    ]


def test_cluster_role_binding_binds_the_role_to_the_service_account(dra):
    binding = one(dra, "ClusterRoleBinding", "dra")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "neuron-dra",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "neuron-dra", "namespace": "neuron-system"}
    ]
    assert one(dra, "ServiceAccount", "dra")["metadata"]["namespace"] == "neuron-system"
    assert pod_spec(one(dra, "DaemonSet", "dra"))["serviceAccountName"] == "neuron-dra"


# ---- the admission policy -----------------------------------------------------------------------


def policy(objs):
    return one(objs, "ValidatingAdmissionPolicy", "dra")["spec"]


def test_policy_matches_the_drivers_writes_of_resource_slices(dra):
    spec = policy(dra)
    assert spec["failurePolicy"] == "Fail"
    assert spec["matchConstraints"]["resourceRules"] == [
        {
            "apiGroups": ["resource.k8s.io"],
            "apiVersions": ["v1"],
            "operations": ["CREATE", "UPDATE", "DELETE"],
            "resources": ["resourceslices"],
        }
    ]
    (condition,) = spec["matchConditions"]
    assert condition["expression"] == (
        'request.userInfo.username == "system:serviceaccount:neuron-system:neuron-dra"'
    )


def test_policy_keys_on_the_node_named_in_the_pod_bound_token(dra):
    spec = policy(dra)
    variables = {v["name"]: v["expression"] for v in spec["variables"]}
    assert (
        'request.userInfo.extra["authentication.kubernetes.io/node-name"][0]' in (variables["node"])
    )
    # A delete is judged by the slice it removes, an update by the slice before and after.
    assert variables["slices"] == (
        'request.operation == "DELETE" ? [oldObject] : '
        'request.operation == "UPDATE" ? [object, oldObject] : [object]'
    )
    expressions = [v["expression"] for v in spec["validations"]]
    assert expressions == [
        'variables.node != ""',
        "variables.slices.all(s, has(s.spec.nodeName) && s.spec.nodeName == variables.node)",
        'variables.slices.all(s, s.spec.driver == "neuron.aws.com")',
    ]


def test_policy_messages_are_sentences(dra):
    validations = policy(dra)["validations"]
    assert validations[0]["message"] == (
        "The DRA driver's token names no node. It must use its pod's own service account token."
    )
    assert (
        "may create, update and delete only the ResourceSlices of that node."
        in (validations[1]["messageExpression"])
    )
    assert validations[2]["message"] == (
        "The DRA driver may create, update and delete only the ResourceSlices of its own"
        " driver, neuron.aws.com."
    )


def test_policy_binding_denies(dra):
    binding = one(dra, "ValidatingAdmissionPolicyBinding", "dra")
    assert binding["spec"] == {"policyName": "neuron-dra", "validationActions": ["Deny"]}


def test_policy_follows_the_driver_name_and_service_account():
    objs = with_dra({"driverName": "neuron.example.com", "serviceAccount": {"name": "drv"}})
    spec = policy(objs)
    assert ":neuron-system:drv" in spec["matchConditions"][0]["expression"]
    assert spec["validations"][2]["expression"].endswith('== "neuron.example.com")')


def test_no_policy_when_admission_policies_are_off():
    objs = with_dra(admissionPolicies={"enabled": False})
    assert objects_of(objs, "ValidatingAdmissionPolicy", "dra") == []
    assert objects_of(objs, "ValidatingAdmissionPolicyBinding", "dra") == []


# ---- the DeviceClass and the NetworkPolicy ------------------------------------------------------


def test_device_class_is_awss_and_selects_the_drivers_devices(dra):
    device_class = one(dra, "DeviceClass", "dra")
    assert device_class["apiVersion"] == "resource.k8s.io/v1"
    assert device_class["metadata"]["name"] == "neuron.aws.com"
    assert "namespace" not in device_class["metadata"]
    assert device_class["spec"] == {
        "selectors": [{"cel": {"expression": 'device.driver == "neuron.aws.com"'}}]
    }


def test_device_class_follows_the_driver_name():
    device_class = one(with_dra({"driverName": "neuron.example.com"}), "DeviceClass", "dra")
    assert device_class["metadata"]["name"] == "neuron.example.com"
    assert device_class["spec"]["selectors"][0]["cel"]["expression"] == (
        'device.driver == "neuron.example.com"'
    )


def test_device_class_can_be_left_to_another_owner():
    assert objects_of(with_dra({"deviceClasses": {"create": False}}), "DeviceClass") == []


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


# ---- never the device plugin and the DRA driver on one node ------------------------------------


def test_both_without_a_node_selector_are_refused_with_a_sentence():
    error = render_error({"dra": {"enabled": True}})
    assert (
        "dra.enabled=true with devicePlugin.enabled=true needs dra.nodeSelector: the device"
        " plugin and a DRA driver cannot run on the same node"
    ) in error
    assert "or set devicePlugin.enabled=false to run the DRA driver alone." in error


def test_the_driver_alone_needs_no_node_selector():
    obj = one(render({**ALONE, "dra": {"enabled": True}}), "DaemonSet", "dra")
    assert "nodeSelector" not in pod_spec(obj)


def test_device_plugin_affinity_excludes_the_dra_nodes(dra):
    (term,) = required_node_terms(workload(dra, "devicePlugin"))
    assert term["matchExpressions"] == [
        {
            "key": "node.kubernetes.io/instance-type",
            "operator": "In",
            "values": list(INSTANCE_TYPES),
        },
        {"key": "neuron.k8s.local/dra", "operator": "NotIn", "values": ["true"]},
    ]


def test_device_plugin_affinity_excludes_every_dra_label_in_every_term():
    user_affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["a"]}]},
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n"]}]},
                ]
            }
        }
    }
    objs = render(
        {
            "devicePlugin": {"affinity": user_affinity},
            "dra": {"enabled": True, "nodeSelector": {"zone": "b", "accel": "dra"}},
        }
    )
    excluded = [
        {"key": "accel", "operator": "NotIn", "values": ["dra"]},
        {"key": "zone", "operator": "NotIn", "values": ["b"]},
    ]
    assert required_node_terms(workload(objs, "devicePlugin")) == [
        {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["a"]}, *excluded]},
        {
            "matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n"]}],
            "matchExpressions": excluded,
        },
    ]


def test_device_plugin_without_instance_types_still_excludes_the_dra_nodes():
    objs = with_dra(devicePlugin={"instanceTypes": []})
    assert required_node_terms(workload(objs, "devicePlugin")) == [
        {
            "matchExpressions": [
                {"key": "neuron.k8s.local/dra", "operator": "NotIn", "values": ["true"]}
            ]
        }
    ]


def test_the_dra_driver_itself_gets_no_exclusion(dra):
    (term,) = required_node_terms(one(dra, "DaemonSet", "dra"))
    assert [e["operator"] for e in term["matchExpressions"]] == ["In"]


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
    assert [o for o in objs if o["kind"] in ("Deployment", "Pod")] == []
    assert [o["metadata"]["name"] for o in objs if o["kind"] == "DaemonSet"] == ["neuron-dra"]
    obj = one(objs, "DaemonSet", "dra")
    assert container(obj)["image"] == (
        "123456789012.dkr.ecr.us-west-2.amazonaws.com/neuron-k8s:0.1.0"
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
