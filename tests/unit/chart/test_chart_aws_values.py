"""A values file written for AWS's neuron-helm-chart 1.9/1.10 (aws_values_1_10.yaml): the chart
recognises AWS's keys and refuses them in one failure, one sentence per key naming this chart's
equivalent (templates/validation/aws-keys.yaml), before any other refusal those values would
cause; values that keep a key of both charts but AWS's meaning (`scheduler` is AWS's extender,
here kube-scheduler) are refused the same way; this chart's own values files trigger none of it."""

import json
import re
from pathlib import Path

import pytest
import yaml
from chartlib import CHART, KUBE_VERSION, container, helm, nested, render, render_error, workload

AWS_VALUES = Path(__file__).with_name("aws_values_1_10.yaml")
FIXTURE = yaml.safe_load(AWS_VALUES.read_text())
HEADER = "these values are AWS's neuron-helm-chart's"
SCHEMA = json.loads((CHART / "values.schema.json").read_text())

# AWS's key -> words its sentence must hold: this chart's equivalent, or why there is none.
KEY_MAP = {
    "neuronInstances": "devicePlugin.instanceTypes",
    "draDriver": "DRA driver is `dra`",
    "monitor": "metrics.serviceMonitor",
    "ultraserverOperator": "no equivalent",
    "devicePlugin.nameOverride": "devicePlugin.daemonSetNameOverride",
    "devicePlugin.namespaceOverride": "top-level namespaceOverride",
    "devicePlugin.runtimeClassName": "no equivalent",
    "devicePlugin.env": "devicePlugin.extraEnv",
    "devicePlugin.volumes": "devicePlugin.extraVolumes",
    "devicePlugin.volumeMounts": "devicePlugin.extraVolumeMounts",
    "scheduler.replicaCount": "extender.replicas",
    "scheduler.nameOverride": "extender.fullnameOverride",
    "scheduler.namespaceOverride": "top-level namespaceOverride",
    "scheduler.env": "extender.port",
    "scheduler.customScheduler": "my-scheduler is `scheduler` itself",
    "scheduler.defaultScheduler": "no equivalent",
    "npd.nameOverride": "<fullname>-node-problem-detector",
    "npd.fullnameOverride": "<fullname>-node-problem-detector",
    "npd.namespaceOverride": "chart's one namespace",
    "npd.selectorLabelsOverride": "no equivalent",
    "npd.podSecurityContext": "npd.securityContext",
    "npd.runtimeClassName": "no equivalent",
    "npd.config": "not configurable",
    "npd.nodeProblemDetector": "npd.image, npd.resources",
    "npd.nodeRecovery": "no equivalent",
}
# Keys of both charts whose AWS value means something else here -> words of the sentence.
VALUE_MAP = {
    "scheduler.image": "AWS's extender is `extender` (extender.image.repository",
    "scheduler.fullnameOverride": "extender's objects are named by extender.fullnameOverride",
    "devicePlugin.affinity": "devicePlugin.instanceTypes",
}


def at(values, dotted):
    for key in dotted.split("."):
        values = values[key]
    return values


def sentences(error: str) -> dict[str, str]:
    """The refusal's sentences, by the key each names first."""
    assert error.count(HEADER) == 1, error
    body = error.split(HEADER, 1)[1].split("\n\n", 1)[0]
    lines = body.split("\n- ")[1:]
    return {re.split("[ =]", line, maxsplit=1)[0]: line for line in lines}


def test_an_aws_values_file_is_refused_once_with_every_key_and_its_equivalent():
    error = render_error(files=[AWS_VALUES], implementation=None)
    found = sentences(error)
    # null is how AWS's file leaves a key unset (devicePlugin.runtimeClassName): nothing to say.
    expected = {key for key in KEY_MAP if at(FIXTURE, key) is not None} | set(VALUE_MAP)
    assert set(found) == expected
    for key, line in found.items():
        assert (KEY_MAP | VALUE_MAP)[key] in line, line
    assert "docs/migration.md#from-awss-neuron-helm-chart" in error


@pytest.mark.parametrize("key", sorted(KEY_MAP))
def test_each_aws_key_is_refused_with_a_sentence_naming_its_equivalent(key):
    value = at(FIXTURE, key)
    error = render_error(nested({}, key, "" if value is None else value), implementation=None)
    (line,) = sentences(error).values()
    assert line.startswith(f"{key} is AWS's chart's")
    assert KEY_MAP[key] in line


@pytest.mark.parametrize(
    "image",
    [
        {"tag": "2.32.0.0"},
        {"repository": "public.ecr.aws/neuron/neuron-scheduler", "tag": KUBE_VERSION},
    ],
    ids=["aws-tag", "aws-repository"],
)
def test_awss_extender_image_under_scheduler_is_refused_as_the_extenders(image):
    error = render_error({"scheduler": {"image": image}}, implementation=None)
    (line,) = sentences(error).values()
    assert line.startswith("scheduler.image (")
    assert "here `scheduler` is my-scheduler, a kube-scheduler" in line
    assert VALUE_MAP["scheduler.image"] in line


@pytest.mark.parametrize("tag", [KUBE_VERSION, "v1.31.12-eks-1-31-30"])
def test_a_kube_scheduler_tag_is_taken(tag):
    objs = render({"scheduler": {"image": {"tag": tag}}}, implementation=None)
    assert container(workload(objs, "scheduler"))["image"].endswith(f":{tag}")


def test_awss_extender_name_for_the_scheduler_is_refused():
    error = render_error({"scheduler": {"fullnameOverride": "k8s-neuron-scheduler"}})
    (line,) = sentences(error).values()
    assert line.startswith("scheduler.fullnameOverride=k8s-neuron-scheduler is AWS's extender's")


AWS_AFFINITY = at(FIXTURE, "devicePlugin.affinity")


@pytest.mark.parametrize(
    ("block", "owner"), [("devicePlugin", "devicePlugin"), ("dra", "dra"), ("npd", "devicePlugin")]
)
def test_awss_affinity_placeholders_are_refused(block, owner):
    error = render_error({block: {"affinity": AWS_AFFINITY}})
    (line,) = sentences(error).values()
    assert line.startswith(f"{block}.affinity holds AWS's chart's placeholders")
    assert f"{owner}.instanceTypes" in line


def test_the_aws_map_comes_before_any_other_refusal():
    others = {"extender": {"replicas": 2}, "dra": {"enabled": True, "implementation": "aws"}}
    # Each refused alone: extender.replicas=2 by validation.yaml, AWS's DRA image elsewhere.
    assert "extender.replicas=2" in render_error({"extender": {"replicas": 2}})
    assert "dra" in render_error({"dra": others["dra"]}, implementation=None)
    error = render_error(
        others,
        files=[AWS_VALUES],
        implementation=None,
    )
    assert "neuronInstances" in sentences(error)
    assert "extender.replicas=2" not in error


OWN_FILES = sorted([*CHART.glob("examples/*.yaml"), *CHART.glob("ci/*.yaml")])


@pytest.mark.parametrize("path", OWN_FILES, ids=[f"{p.parent.name}/{p.name}" for p in OWN_FILES])
def test_this_charts_own_values_files_trigger_no_aws_refusal(path):
    # The AWS map renders first, so any other outcome (even another refusal) means it had none.
    result = helm("template", "neuron", str(CHART), "--kube-version", KUBE_VERSION, "-f", str(path))
    assert "don't meet the specifications of the schema" not in result.stderr
    assert HEADER not in result.stderr


def test_the_schema_lets_through_exactly_the_keys_the_template_refuses():
    def aws_keys(node, prefix=""):
        for key, child in node.get("properties", {}).items():
            if child.get("$ref") == "#/definitions/awsKey":
                yield prefix + key
            elif "properties" in child:
                yield from aws_keys(child, f"{prefix}{key}.")

    assert set(aws_keys(SCHEMA)) == set(KEY_MAP)
    assert "refused with its equivalent" in SCHEMA["definitions"]["awsKey"]["description"]
