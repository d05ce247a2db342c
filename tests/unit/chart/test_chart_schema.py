"""values.schema.json: bad values are refused by helm with a message naming the key."""

import json

import pytest
from chartlib import CHART, render_error, values_yaml

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
# Objects whose keys are Kubernetes fields or user-chosen names, not chart values.
FREE_FORM = {
    "global",
    "commonLabels",
    "nodeSelector",
    "podAnnotations",
    "podLabels",
    "annotations",
    "selectorLabelsOverride",
    "podSecurityContext",
    "securityContext",
    "requests",
    "limits",
    "nodeAffinity",
    "podAffinity",
    "podAntiAffinity",
    "rollingUpdate",
}


def resolve(node):
    while "$ref" in node:
        node = SCHEMA["definitions"][node["$ref"].rsplit("/", 1)[1]]
    return node


def leaf_paths(values, prefix=""):
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and key not in FREE_FORM:
            yield from leaf_paths(value, path + ".")
        else:
            yield path


def test_schema_is_draft_07():
    assert SCHEMA["$schema"] == "http://json-schema.org/draft-07/schema#"


def test_schema_describes_every_value():
    for path in leaf_paths(values_yaml()):
        node = SCHEMA
        for key in path.split("."):
            node = resolve(node)
            assert key in node.get("properties", {}), f"{path}: no schema for {key}"
            node = node["properties"][key]


def test_every_chart_object_refuses_unknown_keys():
    def walk(node, where):
        node = resolve(node)
        if node.get("type") == "object" and "properties" in node:
            assert node.get("additionalProperties") is False, where
            for key, child in node["properties"].items():
                if key not in FREE_FORM:
                    walk(child, f"{where}.{key}")

    walk(SCHEMA, "values")


@pytest.mark.parametrize(
    ("setting", "where", "message"),
    [
        ("devicePlugin.imagee=x", "at '/devicePlugin'", "additional properties 'imagee'"),
        ("devicePluginn.enabled=true", "at ''", "additional properties 'devicePluginn'"),
        ("extender.service.prot=1", "at '/extender/service'", "additional properties 'prot'"),
        ("scheduler.extenderConfig.weight=1", "at '/scheduler/extenderConfig'", "'weight'"),
        ("devicePlugin.fake.device=1", "at '/devicePlugin/fake'", "additional properties 'device'"),
        ("test.counts=1", "at '/test'", "additional properties 'counts'"),
    ],
)
def test_unknown_key_is_refused_by_name(setting, where, message):
    error = render_error(set_values=[setting])
    assert "values don't meet the specifications of the schema" in error
    assert where in error
    assert message in error


@pytest.mark.parametrize(
    ("setting", "where", "message"),
    [
        ("devicePlugin.httpPort=70000", "/devicePlugin/httpPort", "maximum"),
        ("devicePlugin.httpPort=0", "/devicePlugin/httpPort", "minimum"),
        ("devicePlugin.httpPort=abc", "/devicePlugin/httpPort", "got string, want integer"),
        ("extender.port=65536", "/extender/port", "maximum"),
        ("extender.service.port=0", "/extender/service/port", "minimum"),
        ("extender.replicas=-1", "/extender/replicas", "minimum"),
        ("scheduler.replicas=-1", "/scheduler/replicas", "minimum"),
        ("scheduler.logLevel=11", "/scheduler/logLevel", "maximum"),
        ("scheduler.logLevel=debug", "/scheduler/logLevel", "got string, want integer"),
        (
            "scheduler.extenderConfig.prioritizeWeight=0",
            "/scheduler/extenderConfig/prioritizeWeight",
            "minimum",
        ),
        ("devicePlugin.fake.devices=-1", "/devicePlugin/fake/devices", "minimum"),
        ("devicePlugin.fake.coresPerDevice=17", "/devicePlugin/fake/coresPerDevice", "maximum"),
        ("devicePlugin.enabled=yes", "/devicePlugin/enabled", "got string, want boolean"),
        ("test.count=0", "/test/count", "minimum"),
        (
            "devicePlugin.livenessProbe.periodSeconds=0",
            "/devicePlugin/livenessProbe/periodSeconds",
            "minimum",
        ),
    ],
)
def test_wrong_type_or_range_is_refused(setting, where, message):
    error = render_error(set_values=[setting])
    assert f"at '{where}'" in error
    assert message in error


@pytest.mark.parametrize(
    ("setting", "where"),
    [
        ("devicePlugin.image.pullPolicy=Sometimes", "/devicePlugin/image/pullPolicy"),
        ("extender.image.pullPolicy=always", "/extender/image/pullPolicy"),
        ("scheduler.image.pullPolicy=Maybe", "/scheduler/image/pullPolicy"),
        ("test.image.pullPolicy=Maybe", "/test/image/pullPolicy"),
        ("devicePlugin.logLevel=trace", "/devicePlugin/logLevel"),
        ("extender.logLevel=verbose", "/extender/logLevel"),
        ("extender.service.type=ExternalName", "/extender/service/type"),
        ("test.resource=aws.amazon.com/neurondevice", "/test/resource"),
        ("devicePlugin.updateStrategy.type=Recreate", "/devicePlugin/updateStrategy/type"),
        ("extender.strategy.type=OnDelete", "/extender/strategy/type"),
    ],
)
def test_value_outside_enum_is_refused(setting, where):
    error = render_error(set_values=[setting])
    assert f"at '{where}'" in error
    assert "value must be one of" in error


@pytest.mark.parametrize(
    ("setting", "where"),
    [
        ("scheduler.leaderElection.leaseDuration=15", "/scheduler/leaderElection/leaseDuration"),
        ("scheduler.extenderConfig.httpTimeout=soon", "/scheduler/extenderConfig/httpTimeout"),
        ("devicePlugin.image.digest=abc", "/devicePlugin/image/digest"),
        ("namespaceOverride=Kube_System", "/namespaceOverride"),
        ("scheduler.name=My Scheduler", "/scheduler/name"),
        ("devicePlugin.devicePluginPath=relative/dir", "/devicePlugin/devicePluginPath"),
        ("clusterDomain=bad_domain", "/clusterDomain"),
        ("devicePlugin.tolerations[0].operator=Is", "/devicePlugin/tolerations/0/operator"),
    ],
)
def test_malformed_string_is_refused(setting, where):
    error = render_error(set_values=[setting])
    assert f"at '{where}'" in error


def test_duplicate_instance_type_is_refused():
    error = render_error({"devicePlugin": {"instanceTypes": ["inf2.xlarge", "inf2.xlarge"]}})
    assert "at '/devicePlugin/instanceTypes'" in error
    assert "items at 0 and 1 are equal" in error


def test_extra_env_without_name_is_refused():
    error = render_error({"extender": {"extraEnv": [{"value": "x"}]}})
    assert "at '/extender/extraEnv/0'" in error
    assert "missing property 'name'" in error
