"""The scheduler extender Deployment, Service, RBAC and their validation."""

import pytest
from chartlib import (
    container,
    env_of,
    extender_service,
    one,
    pod_spec,
    render,
    render_error,
    workload,
)


def objs_with(values):
    return render({"extender": values})


def test_runs_neuron_scheduler_extender_command(default_objects):
    assert container(workload(default_objects, "extender"))["command"] == [
        "neuron-scheduler-extender"
    ]


def test_not_placed_by_the_charts_scheduler_by_default(default_objects):
    assert "schedulerName" not in pod_spec(workload(default_objects, "extender"))


def test_scheduler_name_value():
    obj = workload(objs_with({"schedulerName": "other-scheduler"}), "extender")
    assert pod_spec(obj)["schedulerName"] == "other-scheduler"


def test_scheduler_name_equal_to_charts_scheduler_is_refused():
    error = render_error({"extender": {"schedulerName": "my-scheduler"}})
    assert 'extender.schedulerName must not be "my-scheduler"' in error


def test_port_default_12345_env_and_container_port(default_objects):
    obj = workload(default_objects, "extender")
    assert container(obj)["ports"] == [
        {"name": "http", "containerPort": 12345, "protocol": "TCP"},
        {"name": "probes", "containerPort": 8081, "protocol": "TCP"},
    ]
    assert env_of(obj)["NEURON_EXTENDER_PORT"] == "12345"


def test_port_value():
    obj = workload(objs_with({"port": 8000}), "extender")
    assert container(obj)["ports"][0]["containerPort"] == 8000
    assert env_of(obj)["NEURON_EXTENDER_PORT"] == "8000"


def test_probes_on_health_endpoints(default_objects):
    c = container(workload(default_objects, "extender"))
    # The verbs port needs a client certificate: the probes have a plain port of their own.
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "probes"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "probes"}
    assert env_of(workload(default_objects, "extender"))["NEURON_EXTENDER_HTTP_PORT"] == "8081"


def test_log_level_env(default_objects):
    assert env_of(workload(default_objects, "extender"))["NEURON_EXTENDER_LOG_LEVEL"] == "info"
    obj = workload(objs_with({"logLevel": "warning"}), "extender")
    assert env_of(obj)["NEURON_EXTENDER_LOG_LEVEL"] == "warning"


def instance_type_label(values):
    return env_of(workload(render(values), "extender"))["NEURON_EXTENDER_INSTANCE_TYPE_LABEL"]


def test_instance_type_label_defaults_to_the_plugins(default_objects):
    env = env_of(workload(default_objects, "extender"))
    assert env["NEURON_EXTENDER_INSTANCE_TYPE_LABEL"] == "node.kubernetes.io/instance-type"


def test_instance_type_label_follows_the_plugins_label():
    values = {"devicePlugin": {"instanceTypeLabel": "example.com/instance-type"}}
    assert instance_type_label(values) == "example.com/instance-type"


def test_instance_type_label_follows_the_fake_label_in_fake_mode():
    fake = {"enabled": True, "instanceTypeLabel": "neuron.k8s.local/fake-type"}
    assert instance_type_label({"devicePlugin": {"fake": fake}}) == "neuron.k8s.local/fake-type"


def test_instance_type_label_value_wins():
    values = {
        "extender": {"instanceTypeLabel": "mine"},
        "devicePlugin": {"fake": {"enabled": True, "instanceTypeLabel": "neuron.k8s.local/x"}},
    }
    assert instance_type_label(values) == "mine"


def test_priority_class_system_cluster_critical_by_default(default_objects):
    assert pod_spec(workload(default_objects, "extender"))["priorityClassName"] == (
        "system-cluster-critical"
    )


def test_service_defaults(default_objects):
    service = extender_service(default_objects)
    assert service["metadata"]["name"] == "neuron-extender"
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 12345, "targetPort": "http", "protocol": "TCP"}
    ]


def test_service_port_value():
    service = extender_service(objs_with({"service": {"port": 80}}))
    assert service["spec"]["ports"][0]["port"] == 80


def test_service_type_value():
    service = extender_service(objs_with({"service": {"type": "NodePort", "allowExternal": True}}))
    assert service["spec"]["type"] == "NodePort"


def test_service_annotations():
    annotations = {"service.kubernetes.io/topology-mode": "Auto"}
    service = extender_service(objs_with({"service": {"annotations": annotations}}))
    assert service["metadata"]["annotations"] == annotations


def test_service_selector_follows_selector_labels_override():
    objs = objs_with({"selectorLabelsOverride": {"app": "neuron-scheduler"}})
    assert extender_service(objs)["spec"]["selector"] == {"app": "neuron-scheduler"}


@pytest.mark.parametrize("replicas", [2, 3])
def test_more_than_one_replica_is_refused(replicas):
    error = render_error({"extender": {"replicas": replicas}})
    assert f"extender.replicas={replicas} is not supported" in error


def test_cluster_role_rules(default_objects):
    rules = one(default_objects, "ClusterRole", "extender")["rules"]
    assert rules == [
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["pods/binding", "bindings"], "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
    ]


def test_list_timeout_reaches_the_extender():
    env = env_of(workload(objs_with({"listTimeoutSeconds": 90}), "extender"))
    assert env["NEURON_EXTENDER_LIST_TIMEOUT"] == "90"


def test_cluster_role_binding_binds_role_to_service_account(default_objects):
    binding = one(default_objects, "ClusterRoleBinding", "extender")
    assert binding["roleRef"]["name"] == "neuron-extender"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "neuron-extender", "namespace": "neuron-system"}
    ]


def test_extender_alone_renders_without_scheduler():
    objs = render({"scheduler": {"enabled": False}})
    assert workload(objs, "extender")
    assert not [o for o in objs if o["kind"] == "ConfigMap"]


def test_api_timeout_env_defaults_to_three_seconds(default_objects):
    assert env_of(workload(default_objects, "extender"))["NEURON_EXTENDER_API_TIMEOUT"] == "3"


def test_api_timeout_that_three_binds_calls_cannot_fit_in_the_http_timeout_is_refused():
    error = render_error(
        {
            "extender": {"apiTimeoutSeconds": 4},
            "scheduler": {"extenderConfig": {"httpTimeout": "12s"}},
        }
    )
    assert "extender.apiTimeoutSeconds=4 is too long for" in error
    assert "httpTimeout=12s" in error


def test_api_timeout_is_compared_with_compound_durations():
    objs = render(
        {
            "extender": {"apiTimeoutSeconds": 19.5},
            "scheduler": {"extenderConfig": {"httpTimeout": "1m0s"}},
        }
    )
    assert env_of(workload(objs, "extender"))["NEURON_EXTENDER_API_TIMEOUT"] == "19.5"
    assert "too long" in render_error(
        {
            "extender": {"apiTimeoutSeconds": 0.5},
            "scheduler": {"extenderConfig": {"httpTimeout": "1500ms"}},
        }
    )


def test_the_extender_may_patch_pods_roll_the_scheduler_and_keep_its_two_secrets(
    default_objects,
):
    role = one(default_objects, "Role", "extender")
    assert role["metadata"]["namespace"] == "neuron-system"
    # The Deployment rule: a new client CA rolls my-scheduler (test_chart_tls_rotation.py);
    # the Secret rules: TLS mode chart, certificates issued in the cluster (test_chart_security).
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["patch"]},
        {
            "apiGroups": ["apps"],
            "resources": ["deployments"],
            "resourceNames": ["neuron-scheduler"],
            "verbs": ["get", "patch"],
        },
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": ["neuron-extender-tls-ca", "neuron-scheduler-client-cert"],
            "verbs": ["get", "update", "delete"],
        },
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
    ]
    binding = one(default_objects, "RoleBinding", "extender")
    assert binding["roleRef"]["name"] == "neuron-extender"
    assert binding["subjects"][0]["name"] == "neuron-extender"


def test_the_extender_knows_its_own_pod_from_the_downward_api(default_objects):
    env = container(workload(default_objects, "extender"))["env"]
    fields = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") for e in env}
    assert fields["NEURON_EXTENDER_POD_NAME"] == "metadata.name"
    assert fields["NEURON_EXTENDER_POD_NAMESPACE"] == "metadata.namespace"
