"""my-scheduler: its KubeSchedulerConfiguration, Deployment, RBAC and validation."""

import re

import pytest
from chartlib import (
    container,
    extender_service,
    objects_of,
    one,
    pod_spec,
    render,
    render_error,
    scheduler_config,
    workload,
)

# JSON field names of kubescheduler.config.k8s.io/v1 (k8s.io/kube-scheduler config/v1 types.go
# and component-base LeaderElectionConfiguration), to catch misspelled keys, which kube-scheduler
# rejects in strict decoding.
CONFIG_KEYS = {
    "apiVersion",
    "kind",
    "parallelism",
    "leaderElection",
    "clientConnection",
    "healthzBindAddress",
    "metricsBindAddress",
    "enableProfiling",
    "enableContentionProfiling",
    "percentageOfNodesToScore",
    "podInitialBackoffSeconds",
    "podMaxBackoffSeconds",
    "profiles",
    "extenders",
    "delayCacheUntilActive",
}
EXTENDER_KEYS = {
    "urlPrefix",
    "filterVerb",
    "preemptVerb",
    "prioritizeVerb",
    "weight",
    "bindVerb",
    "enableHTTPS",
    "tlsConfig",
    "httpTimeout",
    "nodeCacheCapable",
    "managedResources",
    "ignorable",
}
LEADER_ELECTION_KEYS = {
    "leaderElect",
    "leaseDuration",
    "renewDeadline",
    "retryPeriod",
    "resourceLock",
    "resourceName",
    "resourceNamespace",
}
DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")
UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def seconds(duration: str) -> float:
    assert DURATION.match(duration), duration
    return sum(
        float(n) * UNITS[u] for n, _, u in re.findall(r"(\d+(\.\d+)?)(ns|us|µs|ms|s|m|h)", duration)
    )


def config_with(values):
    return scheduler_config(render({"scheduler": values}))


def extender_of(config):
    (extender,) = config["extenders"]
    return extender


def test_config_is_a_v1_kube_scheduler_configuration(default_objects):
    config = scheduler_config(default_objects)
    assert config["apiVersion"] == "kubescheduler.config.k8s.io/v1"
    assert config["kind"] == "KubeSchedulerConfiguration"
    assert set(config) <= CONFIG_KEYS
    assert set(extender_of(config)) <= EXTENDER_KEYS
    assert set(config["leaderElection"]) <= LEADER_ELECTION_KEYS


def test_profile_carries_the_scheduler_name(default_objects):
    assert scheduler_config(default_objects)["profiles"] == [{"schedulerName": "my-scheduler"}]


def test_scheduler_name_value_sets_profile_and_lease():
    config = config_with({"name": "neuron-scheduler"})
    assert config["profiles"] == [{"schedulerName": "neuron-scheduler"}]
    assert config["leaderElection"]["resourceName"] == "neuron-scheduler"


def test_extender_defaults(default_objects):
    assert extender_of(scheduler_config(default_objects)) == {
        "urlPrefix": "https://neuron-extender.neuron-system.svc.cluster.local:12345",
        "filterVerb": "filter",
        "prioritizeVerb": "prioritize",
        "weight": 5,
        "bindVerb": "bind",
        "enableHTTPS": True,
        "tlsConfig": {
            "certFile": "/etc/kubernetes/neuron-scheduler-tls/tls.crt",
            "keyFile": "/etc/kubernetes/neuron-scheduler-tls/tls.key",
            "caFile": "/etc/kubernetes/neuron-scheduler-tls/ca.crt",
        },
        "httpTimeout": "10s",
        "nodeCacheCapable": True,
        "managedResources": [
            {"name": "aws.amazon.com/neuron", "ignoredByScheduler": False},
            {"name": "aws.amazon.com/neuroncore", "ignoredByScheduler": False},
        ],
        "ignorable": False,
    }


def test_url_prefix_built_from_rendered_service_name_namespace_and_port():
    objs = render(
        {
            "namespaceOverride": "accel",
            "extender": {"fullnameOverride": "nx", "service": {"port": 8080}},
        }
    )
    service = extender_service(objs)
    name, namespace = service["metadata"]["name"], service["metadata"]["namespace"]
    port = service["spec"]["ports"][0]["port"]
    assert extender_of(scheduler_config(objs))["urlPrefix"] == (
        f"https://{name}.{namespace}.svc.cluster.local:{port}"
    )
    assert (name, namespace, port) == ("nx", "accel", 8080)


def test_plain_http_to_the_extender_only_when_tls_is_disabled():
    config = scheduler_config(render({"extender": {"tls": {"mode": "disabled"}}}))
    extender = extender_of(config)
    assert extender["urlPrefix"].startswith("http://") and extender["enableHTTPS"] is False
    assert "tlsConfig" not in extender


def test_profiling_is_off(default_objects):
    assert scheduler_config(default_objects)["enableProfiling"] is False


def test_prioritize_weight_value():
    assert extender_of(config_with({"extenderConfig": {"prioritizeWeight": 2}}))["weight"] == 2


def test_node_cache_capable_value():
    config = config_with({"extenderConfig": {"nodeCacheCapable": False}})
    assert extender_of(config)["nodeCacheCapable"] is False


def test_ignorable_value():
    assert extender_of(config_with({"extenderConfig": {"ignorable": True}}))["ignorable"] is True


def test_http_timeout_value():
    config = config_with({"extenderConfig": {"httpTimeout": "30s"}})
    assert extender_of(config)["httpTimeout"] == "30s"


def test_manage_neuron_device_adds_the_resource():
    config = config_with({"extenderConfig": {"manageNeuronDevice": True}})
    names = [r["name"] for r in extender_of(config)["managedResources"]]
    assert names == [
        "aws.amazon.com/neuron",
        "aws.amazon.com/neuroncore",
        "aws.amazon.com/neurondevice",
    ]


def test_leader_election_defaults(default_objects):
    leader = scheduler_config(default_objects)["leaderElection"]
    assert leader == {
        "leaderElect": True,
        "resourceLock": "leases",
        "resourceNamespace": "neuron-system",
        "resourceName": "my-scheduler",
        "leaseDuration": "15s",
        "renewDeadline": "10s",
        "retryPeriod": "2s",
    }
    # kube-scheduler's own validation: all positive, lease longer than the renew deadline.
    assert seconds(leader["leaseDuration"]) > seconds(leader["renewDeadline"]) > 0
    assert seconds(leader["retryPeriod"]) > 0


def test_leader_election_durations():
    timing = {"leaseDuration": "1m", "renewDeadline": "45s", "retryPeriod": "5s"}
    leader = config_with({"leaderElection": timing})["leaderElection"]
    assert {k: leader[k] for k in timing} == timing


def test_leader_election_disabled():
    assert config_with({"leaderElection": {"enabled": False}})["leaderElection"] == {
        "leaderElect": False
    }


def test_several_replicas_with_leader_election():
    assert workload(render({"scheduler": {"replicas": 2}}), "scheduler")["spec"]["replicas"] == 2


def test_several_replicas_without_leader_election_are_refused():
    error = render_error({"scheduler": {"replicas": 2, "leaderElection": {"enabled": False}}})
    assert "scheduler.replicas=2 needs scheduler.leaderElection.enabled=true" in error


def test_scheduler_without_extender_is_refused():
    error = render_error({"extender": {"enabled": False}})
    assert "scheduler.enabled=true needs extender.enabled=true" in error


def test_default_scheduler_name_is_refused():
    error = render_error({"scheduler": {"name": "default-scheduler"}})
    assert 'scheduler.name must not be "default-scheduler"' in error


def test_config_map_key_is_its_name_and_is_mounted_for_config_flag(default_objects):
    configmap = one(default_objects, "ConfigMap", "scheduler")
    assert configmap["metadata"]["name"] == "neuron-scheduler-config"
    assert list(configmap["data"]) == ["neuron-scheduler-config.yaml"]
    obj = workload(default_objects, "scheduler")
    (volume,) = [v for v in pod_spec(obj)["volumes"] if v["name"] == "config"]
    assert volume["configMap"]["name"] == "neuron-scheduler-config"
    (mount,) = [m for m in container(obj)["volumeMounts"] if m["name"] == "config"]
    assert container(obj)["args"][0] == (
        f"--config={mount['mountPath']}/neuron-scheduler-config.yaml"
    )


def test_command_and_default_args(default_objects):
    c = container(workload(default_objects, "scheduler"))
    assert c["command"] == ["kube-scheduler"]
    assert c["args"][1:] == ["--v=2"]


def test_command_value():
    obj = workload(
        render({"scheduler": {"command": ["/usr/local/bin/kube-scheduler"]}}), "scheduler"
    )
    assert container(obj)["command"] == ["/usr/local/bin/kube-scheduler"]


def test_log_level_sets_verbosity():
    obj = workload(render({"scheduler": {"logLevel": 4}}), "scheduler")
    assert "--v=4" in container(obj)["args"]


def test_extra_args_follow_config_and_verbosity():
    obj = workload(render({"scheduler": {"extraArgs": ["--kube-api-qps=100"]}}), "scheduler")
    args = container(obj)["args"]
    assert args[0].startswith("--config=")
    assert args[1:] == ["--v=2", "--kube-api-qps=100"]


def test_liveness_and_readiness_probe_different_endpoints_on_10259(default_objects):
    c = container(workload(default_objects, "scheduler"))
    assert c["livenessProbe"]["httpGet"] == {"path": "/livez", "port": 10259, "scheme": "HTTPS"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 10259, "scheme": "HTTPS"}


def test_image_tag_derived_from_cluster_version():
    objs = render(kube_version="v1.35.3")
    assert container(workload(objs, "scheduler"))["image"] == (
        "registry.k8s.io/kube-scheduler:v1.35.3"
    )


def test_image_tag_drops_provider_suffix_of_cluster_version():
    objs = render(kube_version="v1.36.1-eks-1a2b3c4")
    assert container(workload(objs, "scheduler"))["image"] == (
        "registry.k8s.io/kube-scheduler:v1.36.1"
    )


def test_image_tag_value_wins_over_cluster_version():
    objs = render({"scheduler": {"image": {"tag": "v1.36.1"}}})
    assert container(workload(objs, "scheduler"))["image"] == (
        "registry.k8s.io/kube-scheduler:v1.36.1"
    )


def test_an_offline_render_with_the_image_tag_needs_no_cluster_version():
    objs = render({"scheduler": {"image": {"tag": "v1.36.1"}}}, kube_version="")
    assert container(workload(objs, "scheduler"))["image"].endswith(":v1.36.1")


def test_image_repository_value():
    objs = render(
        {"scheduler": {"image": {"repository": "mirror.example/kube-scheduler"}}},
        kube_version="v1.35.3",
    )
    assert container(workload(objs, "scheduler"))["image"] == (
        "mirror.example/kube-scheduler:v1.35.3"
    )


def test_config_checksum_rolls_pods_when_config_changes(default_objects):
    def checksum(objs):
        return workload(objs, "scheduler")["spec"]["template"]["metadata"]["annotations"][
            "checksum/config"
        ]

    changed = render({"scheduler": {"extenderConfig": {"httpTimeout": "20s"}}})
    assert checksum(default_objects) != checksum(changed)
    assert checksum(default_objects) == checksum(render())


def test_its_own_lease_only_in_its_namespace(default_objects):
    # Failed on main before: leases and ConfigMaps of every namespace.
    assert objects_of(default_objects, "ClusterRole", "scheduler") == []
    role = one(default_objects, "Role", "scheduler")
    assert role["metadata"]["namespace"] == "neuron-system"
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": ["my-scheduler"],
            "verbs": ["get", "update"],
        },
    ]


def test_reads_only_the_authentication_config_map_through_the_built_in_role(default_objects):
    bindings = {b["metadata"]["name"]: b for b in objects_of(default_objects, "RoleBinding")}
    reader = bindings["neuron-scheduler-auth-reader"]
    assert reader["metadata"]["namespace"] == "kube-system"
    assert reader["roleRef"]["name"] == "extension-apiserver-authentication-reader"
    assert reader["subjects"] == [
        {"kind": "ServiceAccount", "name": "neuron-scheduler", "namespace": "neuron-system"}
    ]


def test_no_lease_role_without_leader_election():
    objs = render({"scheduler": {"leaderElection": {"enabled": False}}})
    assert objects_of(objs, "Role", "scheduler") == []


def test_more_than_one_replica_gets_a_disruption_budget_and_a_spread():
    objs = render({"scheduler": {"replicas": 2}})
    pdb = one(objs, "PodDisruptionBudget", "scheduler")
    assert pdb["spec"]["maxUnavailable"] == 1
    selector = pdb["spec"]["selector"]["matchLabels"]
    assert selector["app.kubernetes.io/instance"] == "neuron"
    (spread,) = pod_spec(workload(objs, "scheduler"))["topologySpreadConstraints"]
    assert spread["labelSelector"]["matchLabels"] == selector
    assert spread["whenUnsatisfiable"] == "ScheduleAnyway"


def test_one_replica_has_no_disruption_budget(default_objects):
    assert objects_of(default_objects, "PodDisruptionBudget") == []


@pytest.mark.parametrize(
    ("name", "role"),
    [
        ("neuron-scheduler-as-kube-scheduler", "system:kube-scheduler"),
        ("neuron-scheduler-as-volume-scheduler", "system:volume-scheduler"),
    ],
)
def test_cluster_role_bindings(default_objects, name, role):
    bindings = {b["metadata"]["name"]: b for b in objects_of(default_objects, "ClusterRoleBinding")}
    binding = bindings[name]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role,
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "neuron-scheduler", "namespace": "neuron-system"}
    ]


def test_the_api_client_limits_are_kube_schedulers_own_by_default(default_objects):
    config = scheduler_config(default_objects)
    assert config["clientConnection"] == {"qps": 50, "burst": 100}


def test_the_api_client_limits_can_be_raised_for_large_clusters():
    objs = render({"scheduler": {"clientConnection": {"qps": 500, "burst": 1000}}})
    assert scheduler_config(objs)["clientConnection"] == {"qps": 500, "burst": 1000}


def test_percentage_of_nodes_to_score_is_kube_schedulers_adaptive_default(default_objects):
    assert "percentageOfNodesToScore" not in scheduler_config(default_objects)


def test_percentage_of_nodes_to_score_can_be_set():
    objs = render({"scheduler": {"percentageOfNodesToScore": 20}})
    assert scheduler_config(objs)["percentageOfNodesToScore"] == 20


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"percentageOfNodesToScore": 101}, "/scheduler/percentageOfNodesToScore"),
        ({"clientConnection": {"qps": 0}}, "/scheduler/clientConnection/qps"),
        ({"clientConnection": {"burst": 0}}, "/scheduler/clientConnection/burst"),
    ],
)
def test_out_of_range_scheduler_settings_are_refused_naming_the_key(values, where):
    assert f"at '{where}'" in render_error({"scheduler": values})
