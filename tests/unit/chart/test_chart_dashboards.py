"""The dashboards block: the chart's Grafana dashboard (charts/neuron/dashboards/neuron.json) as a
ConfigMap labelled for kube-prometheus-stack's dashboard sidecar, off unless asked for; and the
dashboard itself, whose every query names only metrics docs/metrics.md documents."""

import json
import re
from pathlib import Path

import pytest
from chartlib import NAMESPACE, objects_of, render, render_error

ROOT = Path(__file__).resolve().parents[3]
DASHBOARD = ROOT / "charts/neuron/dashboards/neuron.json"
DOCS = ROOT / "docs/metrics.md"


def _dashboards(objs):
    return [
        o for o in objects_of(objs, "ConfigMap") if o["metadata"]["name"].endswith("-dashboard")
    ]


def _one(values):
    found = _dashboards(render({"dashboards": {"enabled": True, **values}}))
    assert len(found) == 1
    return found[0]


def _queries():
    doc = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in doc["panels"] for t in p["targets"]]


def test_no_dashboard_unless_enabled():
    assert not _dashboards(render())


def test_the_configmap_carries_the_sidecars_default_label_and_the_dashboard():
    cm = _one({})
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["namespace"] == NAMESPACE
    assert json.loads(cm["data"]["neuron.json"]) == json.loads(DASHBOARD.read_text())


def test_the_label_key_and_value_follow_the_values():
    cm = _one({"label": "example.com/dashboard", "labelValue": "neuron"})
    labels = cm["metadata"]["labels"]
    assert labels["example.com/dashboard"] == "neuron"
    assert "grafana_dashboard" not in labels


def test_the_namespace_can_be_grafanas():
    assert _one({"namespace": "monitoring"})["metadata"]["namespace"] == "monitoring"


def test_extra_labels_and_annotations_are_added():
    cm = _one({"labels": {"team": "ml"}, "annotations": {"grafana_folder": "Neuron"}})
    assert cm["metadata"]["labels"]["team"] == "ml"
    assert cm["metadata"]["labels"]["app.kubernetes.io/instance"]
    assert cm["metadata"]["annotations"] == {"grafana_folder": "Neuron"}


@pytest.mark.parametrize(
    "values",
    [{"label": "not a label"}, {"labelValue": "-bad-"}, {"namespace": "Upper"}, {"extra": 1}],
)
def test_the_schema_refuses_what_is_not_a_label_or_a_namespace(values):
    assert "dashboards" in render_error({"dashboards": {"enabled": True, **values}})


def test_every_panel_queries_the_datasource_variable():
    doc = json.loads(DASHBOARD.read_text())
    assert {"datasource"} <= {v["name"] for v in doc["templating"]["list"]}
    for panel in doc["panels"]:
        assert panel["targets"], panel["title"]
        assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"])


def test_every_metric_the_dashboard_queries_is_documented():
    documented = set(re.findall(r"^\| `(neuron_\w+)`", DOCS.read_text(), re.M))
    used = {m for q in _queries() for m in re.findall(r"\bneuron_\w+", q)}
    base = {re.sub(r"_(bucket|count|sum)$", "", m) for m in used}
    assert used and base <= documented


def test_no_query_needs_grafana_to_fill_it_in():
    # Real Prometheus evaluates each as it stands (tests/e2e/test_31_metrics_prometheus.py).
    assert not [q for q in _queries() if "$" in q]
