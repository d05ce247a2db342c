"""The metrics block: Services before the plugin's, the extender's and the DRA driver's /metrics,
and the
Prometheus Operator's ServiceMonitor and PodMonitors, when the API is there or asked for."""

import pytest
from chartlib import NAMESPACE, objects_of, one, render, render_error

MONITORING = "monitoring.coreos.com/v1"


def _names(objs, kind):
    return sorted(o["metadata"]["name"] for o in objects_of(objs, kind))


def test_a_headless_service_before_each_components_metrics_port():
    objs = render()
    plugin = next(
        o
        for o in objects_of(objs, "Service")
        if o["metadata"]["name"].endswith("device-plugin-metrics")
    )
    assert plugin["spec"]["clusterIP"] == "None"
    assert plugin["spec"]["ports"] == [
        {"name": "metrics", "port": 8080, "targetPort": 8080, "protocol": "TCP"}
    ]
    assert plugin["spec"]["selector"]["app.kubernetes.io/component"] == "device-plugin"
    extender = next(
        o for o in objects_of(objs, "Service") if o["metadata"]["name"].endswith("extender-metrics")
    )
    assert extender["spec"]["ports"][0]["port"] == 8081


def test_the_metrics_services_follow_the_http_ports():
    objs = render({"devicePlugin": {"httpPort": 9100}, "extender": {"httpPort": 9101}})
    ports = {
        o["metadata"]["name"]: o["spec"]["ports"][0]["targetPort"]
        for o in objects_of(objs, "Service")
        if o["metadata"]["name"].endswith("-metrics")
    }
    assert ports == {"neuron-device-plugin-metrics": 9100, "neuron-extender-metrics": 9101}


def test_awss_images_get_no_metrics_service():
    objs = render(implementation="aws")
    assert not [n for n in _names(objs, "Service") if n.endswith("-metrics")]


def test_the_metrics_services_can_be_turned_off():
    objs = render({"metrics": {"service": {"enabled": False}}})
    assert not [n for n in _names(objs, "Service") if n.endswith("-metrics")]


def test_no_monitor_without_the_prometheus_operators_api():
    objs = render()
    assert not objects_of(objs, "ServiceMonitor") and not objects_of(objs, "PodMonitor")


def _with_api(values=None, kinds=("ServiceMonitor", "PodMonitor")):
    return render(values, api_versions=[f"{MONITORING}/{k}" for k in kinds])


def test_a_service_monitor_when_the_cluster_serves_its_api():
    sm = one(_with_api(), "ServiceMonitor")
    assert sm["metadata"]["namespace"] == NAMESPACE
    assert sm["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/instance": "neuron",
        "neuron.k8s.local/metrics": "true",
    }
    assert sm["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "30s", "honorLabels": True}
    ]


def test_the_service_monitor_selects_exactly_the_metrics_services():
    objs = _with_api()
    selector = one(objs, "ServiceMonitor")["spec"]["selector"]["matchLabels"]
    selected = [
        o["metadata"]["name"]
        for o in objects_of(objs, "Service")
        if selector.items() <= o["metadata"]["labels"].items()
    ]
    assert sorted(selected) == ["neuron-device-plugin-metrics", "neuron-extender-metrics"]


def test_the_service_monitor_carries_the_labels_prometheus_selects_on():
    sm = one(
        _with_api({"metrics": {"serviceMonitor": {"labels": {"release": "kps"}}}}), "ServiceMonitor"
    )
    assert sm["metadata"]["labels"]["release"] == "kps"


def test_a_service_monitor_can_be_forced_without_the_api():
    objs = render({"metrics": {"serviceMonitor": {"enabled": True}}})
    assert one(objs, "ServiceMonitor")["apiVersion"] == MONITORING


def test_pod_monitors_scrape_each_components_metrics_port():
    objs = _with_api({"metrics": {"podMonitor": {"enabled": "auto", "interval": "15s"}}})
    ports = {
        o["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"]: o["spec"][
            "podMetricsEndpoints"
        ]
        for o in objects_of(objs, "PodMonitor")
    }
    assert ports == {
        "device-plugin": [
            {"port": "http", "path": "/metrics", "interval": "15s", "honorLabels": True}
        ],
        "extender": [
            {"port": "probes", "path": "/metrics", "interval": "15s", "honorLabels": True}
        ],
    }


def test_monitors_keep_the_workload_labels_of_the_allocation_metrics():
    # neuron_container_cores{namespace, pod, container} names the workload's container: without
    # honorLabels, Prometheus would rename them exported_* under the scraped pod's own labels.
    objs = _with_api(
        {"metrics": {"podMonitor": {"enabled": True}, "serviceMonitor": {"enabled": False}}}
    )
    endpoints = [
        e for o in objects_of(objs, "PodMonitor") for e in o["spec"]["podMetricsEndpoints"]
    ]
    sm = one(_with_api(), "ServiceMonitor")["spec"]["endpoints"]
    assert endpoints and all(e["honorLabels"] is True for e in endpoints + sm)


DRA = {"enabled": True, "nodeSelector": {"neuron.k8s.local/dra": "true"}}


def test_the_dra_driver_gets_a_metrics_service_on_its_health_port():
    objs = render({"dra": {**DRA, "healthPort": 9200}})
    (svc,) = [
        o for o in objects_of(objs, "Service") if o["metadata"]["name"] == "neuron-dra-metrics"
    ]
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["ports"] == [
        {"name": "metrics", "port": 9200, "targetPort": 9200, "protocol": "TCP"}
    ]
    assert svc["spec"]["selector"]["app.kubernetes.io/component"] == "dra"
    assert svc["metadata"]["labels"]["neuron.k8s.local/metrics"] == "true"


def test_no_dra_metrics_service_without_the_dra_driver():
    assert "neuron-dra-metrics" not in _names(render(), "Service")


def test_the_dra_drivers_pod_monitor_scrapes_its_health_port():
    objs = _with_api({"dra": DRA, "metrics": {"podMonitor": {"enabled": "auto"}}})
    (pm,) = [
        o
        for o in objects_of(objs, "PodMonitor")
        if o["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "dra"
    ]
    assert pm["spec"]["podMetricsEndpoints"][0]["port"] == "health"


def test_the_pod_monitor_ports_are_the_containers_http_ports():
    objs = render({"metrics": {"podMonitor": {"enabled": True}}})
    for pm in objects_of(objs, "PodMonitor"):
        component = pm["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"]
        workload = next(
            o
            for o in objs
            if o["kind"] in ("DaemonSet", "Deployment")
            and o["metadata"]["labels"]["app.kubernetes.io/component"] == component
        )
        (c,) = workload["spec"]["template"]["spec"]["containers"]
        port = next(
            p for p in c["ports"] if p["name"] == pm["spec"]["podMetricsEndpoints"][0]["port"]
        )
        assert c["livenessProbe"]["httpGet"]["port"] in (port["name"], port["containerPort"])


@pytest.mark.parametrize("value", ["1 minute", "30"])
def test_a_scrape_interval_that_is_no_duration_is_refused(value):
    error = render_error({"metrics": {"serviceMonitor": {"interval": value}}})
    assert "at '/metrics/serviceMonitor/interval'" in error


# ---- one scrape per target ---------------------------------------------------------------


def test_both_monitors_forced_on_are_refused_with_a_sentence():
    # Failed before: ci/monitoring-values.yaml rendered both, and every target was scraped twice.
    error = render_error(
        {"metrics": {"serviceMonitor": {"enabled": True}, "podMonitor": {"enabled": True}}}
    )
    assert "would scrape every metrics endpoint twice" in error
    assert "metrics.podMonitor.enabled=false" in error


@pytest.mark.parametrize("pod_monitor", [True, "auto"])
def test_the_automatic_service_monitor_gives_way_to_pod_monitors(pod_monitor):
    objs = _with_api({"metrics": {"podMonitor": {"enabled": pod_monitor}}})
    assert objects_of(objs, "PodMonitor")
    assert objects_of(objs, "ServiceMonitor") == []


def test_a_forced_service_monitor_with_automatic_pod_monitors_and_their_api_is_refused():
    values = {"metrics": {"serviceMonitor": {"enabled": True}, "podMonitor": {"enabled": "auto"}}}
    error = render_error(
        values, api_versions=[f"{MONITORING}/{k}" for k in ("ServiceMonitor", "PodMonitor")]
    )
    assert "would scrape every metrics endpoint twice" in error


def test_a_forced_service_monitor_with_automatic_pod_monitors_without_their_api_renders():
    values = {"metrics": {"serviceMonitor": {"enabled": True}, "podMonitor": {"enabled": "auto"}}}
    objs = render(values)
    assert objects_of(objs, "ServiceMonitor") and not objects_of(objs, "PodMonitor")
