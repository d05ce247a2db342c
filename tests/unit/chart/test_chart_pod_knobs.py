"""The pod-spec knobs every component has, one behaviour per test, for each component."""

import pytest
from chartlib import (
    COMPONENTS,
    container,
    env_of,
    objects_of,
    one,
    pod_spec,
    render,
    render_error,
    workload,
)

ALL = sorted(COMPONENTS)
NEURON_K8S = ["devicePlugin", "extender"]  # the components running the neuron-k8s image
DIGEST = "sha256:" + "ab" * 32


def render_component(component, block):
    return workload(render({component: block}), component)


@pytest.mark.parametrize("component", ALL)
def test_enabled_false_removes_every_object_of_the_component(component):
    extra = {"scheduler": {"enabled": False}} if component == "extender" else {}
    objs = render({component: {"enabled": False}, **extra})
    label = COMPONENTS[component][1]
    assert [
        o for o in objs if o["metadata"]["labels"]["app.kubernetes.io/component"] == label
    ] == []


@pytest.mark.parametrize("component", NEURON_K8S)
def test_image_tag_defaults_to_app_version(default_objects, component):
    assert container(workload(default_objects, component))["image"] == "neuron-k8s:0.1.0"


@pytest.mark.parametrize("component", NEURON_K8S)
def test_image_repository_and_tag(component):
    obj = render_component(component, {"image": {"repository": "reg.example/nk", "tag": "1.2.3"}})
    assert container(obj)["image"] == "reg.example/nk:1.2.3"


@pytest.mark.parametrize("component", ALL)
def test_image_digest_pins_the_image_instead_of_the_tag(component):
    obj = render_component(component, {"image": {"repository": "reg.example/x", "digest": DIGEST}})
    assert container(obj)["image"] == f"reg.example/x@{DIGEST}"


@pytest.mark.parametrize("component", ALL)
def test_image_pull_policy(component):
    image = {"repository": "reg.example/x", "pullPolicy": "Always"}
    obj = render_component(component, {"image": image})
    assert container(obj)["imagePullPolicy"] == "Always"


@pytest.mark.parametrize("component", ALL)
def test_image_pull_secrets(component):
    obj = render_component(component, {"imagePullSecrets": [{"name": "regcred"}]})
    assert pod_spec(obj)["imagePullSecrets"] == [{"name": "regcred"}]


@pytest.mark.parametrize("component", ALL)
def test_no_image_pull_secrets_by_default(default_objects, component):
    assert "imagePullSecrets" not in pod_spec(workload(default_objects, component))


@pytest.mark.parametrize("component", ALL)
def test_resources(component):
    resources = {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}
    obj = render_component(component, {"resources": resources})
    assert container(obj)["resources"] == resources


@pytest.mark.parametrize("component", ALL)
def test_node_selector(component):
    obj = render_component(component, {"nodeSelector": {"pool": "system"}})
    assert pod_spec(obj)["nodeSelector"] == {"pool": "system"}


@pytest.mark.parametrize("component", ["extender", "scheduler"])
def test_affinity(component):
    affinity = {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 1,
                    "podAffinityTerm": {
                        "topologyKey": "kubernetes.io/hostname",
                        "labelSelector": {"matchLabels": {"a": "b"}},
                    },
                }
            ]
        }
    }
    obj = render_component(component, {"affinity": affinity})
    assert pod_spec(obj)["affinity"] == affinity


@pytest.mark.parametrize("component", ALL)
def test_tolerations(component):
    tolerations = [{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}]
    obj = render_component(component, {"tolerations": tolerations})
    assert pod_spec(obj)["tolerations"] == tolerations


@pytest.mark.parametrize("component", ALL)
def test_tolerate_critical_addons_only_by_default(default_objects, component):
    tolerations = pod_spec(workload(default_objects, component))["tolerations"]
    # The plugin's one toleration without a key tolerates this taint too.
    assert {"key": "CriticalAddonsOnly", "operator": "Exists"} in tolerations or tolerations == [
        {"operator": "Exists"}
    ]


@pytest.mark.parametrize("component", ALL)
def test_priority_class_name(component):
    obj = render_component(component, {"priorityClassName": "neuron-high"})
    assert pod_spec(obj)["priorityClassName"] == "neuron-high"


@pytest.mark.parametrize("component", ALL)
def test_empty_priority_class_name_is_omitted(component):
    obj = render_component(component, {"priorityClassName": ""})
    assert "priorityClassName" not in pod_spec(obj)


@pytest.mark.parametrize("component", ALL)
def test_pod_security_context(component):
    obj = render_component(component, {"podSecurityContext": {"fsGroup": 2000}})
    # Helm merges the given keys into the default map; a key set to null removes a default.
    assert pod_spec(obj)["securityContext"]["fsGroup"] == 2000


@pytest.mark.parametrize("component", ALL)
def test_container_security_context(component):
    obj = render_component(component, {"securityContext": {"readOnlyRootFilesystem": False}})
    assert container(obj)["securityContext"]["readOnlyRootFilesystem"] is False


@pytest.mark.parametrize("component", ALL)
def test_containers_drop_all_capabilities_and_privilege_escalation(component):
    # Unless the device plugin reads a kernel-message device: test_chart_host_devices.py.
    no_kmsg = {"devicePlugin": {"hostDevices": {"kernelMessages": ""}}}
    security = container(workload(render(no_kmsg), component))["securityContext"]
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["allowPrivilegeEscalation"] is False
    assert security.get("privileged") is not True


@pytest.mark.parametrize("component", ALL)
def test_pods_use_runtime_default_seccomp(default_objects, component):
    security = pod_spec(workload(default_objects, component))["securityContext"]
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}


@pytest.mark.parametrize("component", ["extender", "scheduler"])
def test_control_plane_pods_run_as_non_root(default_objects, component):
    assert pod_spec(workload(default_objects, component))["securityContext"]["runAsNonRoot"]


@pytest.mark.parametrize("component", ALL)
def test_pod_annotations(component):
    obj = render_component(component, {"podAnnotations": {"prometheus.io/scrape": "true"}})
    annotations = obj["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"


@pytest.mark.parametrize("component", ALL)
def test_pod_labels_add_to_pod_template_but_not_selector(component):
    obj = render_component(component, {"podLabels": {"cost-center": "ml"}})
    assert obj["spec"]["template"]["metadata"]["labels"]["cost-center"] == "ml"
    assert "cost-center" not in obj["spec"]["selector"]["matchLabels"]


@pytest.mark.parametrize("component", ALL)
def test_extra_env(component):
    obj = render_component(component, {"extraEnv": [{"name": "EXTRA", "value": "1"}]})
    assert env_of(obj)["EXTRA"] == "1"


@pytest.mark.parametrize("component", NEURON_K8S)
def test_extra_args_become_container_args(component):
    obj = render_component(component, {"extraArgs": ["--log-format=text"]})
    assert container(obj)["args"] == ["--log-format=text"]


@pytest.mark.parametrize("component", NEURON_K8S)
def test_no_args_by_default(default_objects, component):
    assert "args" not in container(workload(default_objects, component))


@pytest.mark.parametrize("component", ALL)
def test_extra_volumes_and_mounts(component):
    obj = render_component(
        component,
        {
            "extraVolumes": [{"name": "scratch", "emptyDir": {}}],
            "extraVolumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
        },
    )
    assert {"name": "scratch", "emptyDir": {}} in pod_spec(obj)["volumes"]
    assert {"name": "scratch", "mountPath": "/scratch"} in container(obj)["volumeMounts"]


@pytest.mark.parametrize("component", ALL)
@pytest.mark.parametrize("probe", ["livenessProbe", "readinessProbe"])
def test_probe_timing(component, probe):
    timing = {"initialDelaySeconds": 30, "periodSeconds": 7, "timeoutSeconds": 3}
    obj = render_component(component, {probe: timing})
    rendered = container(obj)[probe]
    for key, value in timing.items():
        assert rendered[key] == value
    assert "httpGet" in rendered


@pytest.mark.parametrize("component", ALL)
def test_service_account_named_after_component_by_default(default_objects, component):
    obj = workload(default_objects, component)
    name = obj["metadata"]["name"]
    assert pod_spec(obj)["serviceAccountName"] == name
    account = one(default_objects, "ServiceAccount", component)
    assert account["metadata"]["name"] == name


@pytest.mark.parametrize("component", ALL)
def test_service_account_name(component):
    objs = render({component: {"serviceAccount": {"name": "custom-sa"}}})
    assert pod_spec(workload(objs, component))["serviceAccountName"] == "custom-sa"
    assert one(objs, "ServiceAccount", component)["metadata"]["name"] == "custom-sa"
    for binding in objects_of(objs, "ClusterRoleBinding", component):
        assert binding["subjects"][0]["name"] == "custom-sa"


@pytest.mark.parametrize("component", ALL)
def test_service_account_create_false_uses_existing_account(component):
    objs = render({component: {"serviceAccount": {"create": False, "name": "existing"}}})
    assert objects_of(objs, "ServiceAccount", component) == []
    assert pod_spec(workload(objs, component))["serviceAccountName"] == "existing"


@pytest.mark.parametrize("component", ALL)
def test_service_account_create_false_without_name_is_refused(component):
    error = render_error({component: {"serviceAccount": {"create": False}}})
    assert f"{component}.serviceAccount.name is required" in error


@pytest.mark.parametrize("component", ALL)
def test_service_account_annotations(component):
    annotations = {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/neuron"}
    objs = render({component: {"serviceAccount": {"annotations": annotations}}})
    assert one(objs, "ServiceAccount", component)["metadata"]["annotations"] == annotations


@pytest.mark.parametrize("component", ALL)
def test_component_fullname_override_names_its_objects(component):
    objs = render({component: {"fullnameOverride": "custom"}})
    label = COMPONENTS[component][1]
    names = {
        o["metadata"]["name"]
        for o in objs
        if o["metadata"]["labels"]["app.kubernetes.io/component"] == label
    }
    assert "custom" in names
    assert all(name.startswith("custom") for name in names)


@pytest.mark.parametrize("component", ALL)
def test_selector_labels_override(component):
    obj = render_component(component, {"selectorLabelsOverride": {"name": "legacy"}})
    assert obj["spec"]["selector"]["matchLabels"] == {"name": "legacy"}
    assert obj["spec"]["template"]["metadata"]["labels"]["name"] == "legacy"


def test_device_plugin_update_strategy():
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%"}}
    obj = render_component("devicePlugin", {"updateStrategy": strategy})
    assert obj["spec"]["updateStrategy"] == strategy


def test_device_plugin_update_strategy_defaults_to_rolling_update(default_objects):
    assert workload(default_objects, "devicePlugin")["spec"]["updateStrategy"] == {
        "type": "RollingUpdate"
    }


def test_extender_strategy_defaults_to_recreate(default_objects):
    assert workload(default_objects, "extender")["spec"]["strategy"] == {"type": "Recreate"}


@pytest.mark.parametrize("component", ["extender", "scheduler"])
def test_deployment_strategy(component):
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
    obj = render_component(component, {"strategy": strategy})
    assert obj["spec"]["strategy"] == strategy


@pytest.mark.parametrize("component", ["extender", "scheduler"])
def test_replicas_default_to_one(default_objects, component):
    assert workload(default_objects, component)["spec"]["replicas"] == 1


def test_scheduler_replicas():
    assert render_component("scheduler", {"replicas": 3})["spec"]["replicas"] == 3
