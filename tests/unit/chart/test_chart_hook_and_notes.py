"""The helm test hook pod (and the script it runs) and NOTES.txt."""

import json
import shutil
import subprocess
import sys

import pytest
import yaml
from chartlib import (
    CHART,
    IMPLEMENTATION,
    KUBE_VERSION,
    NAMESPACE,
    RELEASE,
    container,
    env_of,
    helm,
    notes,
    objects_of,
    one,
    pod_spec,
    render,
)
from dralib import ON

# helm install, which prints NOTES.txt, has no --kube-version (a client dry-run assumes Helm's
# own default version); helm template has one but prints no notes. So a copy of the chart
# renders NOTES.txt into a ConfigMap that helm template prints.
NOTES_PROBE = """apiVersion: v1
kind: ConfigMap
metadata:
  name: notes-probe
data:
  notes: {{ include (printf "%s/templates/NOTES.txt" .Chart.Name) . | toJson }}
"""
DRA_BEFORE_136 = "v1.35.3"


def hook_pod(values=None):
    return one(render(values), "Pod", "test")


def hook_script(pod) -> str:
    command = container(pod)["command"]
    assert command[:2] == ["python3", "-c"]
    return command[2]


def run_script(pod, cores: str | None) -> subprocess.CompletedProcess:
    env = {k: str(v) for k, v in env_of(pod).items()}
    if cores is not None:
        env["NEURON_RT_VISIBLE_CORES"] = cores
    return subprocess.run(
        [sys.executable, "-c", hook_script(pod)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_hook_is_a_test_hook_deleted_on_success(default_objects):
    annotations = one(default_objects, "Pod", "test")["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "test"
    assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"


def test_hook_requests_one_neuron_core_by_default(default_objects):
    resources = container(one(default_objects, "Pod", "test"))["resources"]
    assert resources["limits"]["aws.amazon.com/neuroncore"] == "1"
    assert resources["requests"]["aws.amazon.com/neuroncore"] == "1"


def test_hook_resource_and_count_values():
    pod = hook_pod({"test": {"resource": "aws.amazon.com/neuron", "count": 2}})
    assert container(pod)["resources"]["limits"]["aws.amazon.com/neuron"] == "2"
    assert "aws.amazon.com/neuroncore" not in container(pod)["resources"]["limits"]
    assert env_of(pod)["NEURON_TEST_RESOURCE"] == "aws.amazon.com/neuron"
    assert env_of(pod)["NEURON_TEST_COUNT"] == "2"


def test_hook_keeps_other_resources():
    pod = hook_pod({"test": {"resources": {"requests": {"cpu": "50m"}}}})
    assert container(pod)["resources"]["requests"]["cpu"] == "50m"


def test_hook_uses_the_charts_scheduler(default_objects):
    assert pod_spec(one(default_objects, "Pod", "test"))["schedulerName"] == "my-scheduler"


def test_hook_uses_default_scheduler_without_the_charts_scheduler():
    pod = hook_pod({"scheduler": {"enabled": False}})
    assert "schedulerName" not in pod_spec(pod)


def test_hook_runs_a_python_image_any_node_can_pull(default_objects):
    pod = one(default_objects, "Pod", "test")
    assert container(pod)["image"] == "public.ecr.aws/docker/library/python:3.11-slim"
    assert pod_spec(pod)["restartPolicy"] == "Never"


def test_hook_image_value():
    pod = hook_pod({"test": {"image": {"repository": "r/x", "tag": "t", "pullPolicy": "Never"}}})
    assert container(pod)["image"] == "r/x:t"
    assert container(pod)["imagePullPolicy"] == "Never"


def test_hook_image_digest():
    digest = "sha256:" + "ef" * 32
    pod = hook_pod({"test": {"image": {"repository": "r/x", "digest": digest}}})
    assert container(pod)["image"] == f"r/x@{digest}"


def test_hook_tolerates_the_neuron_taint_by_default(default_objects):
    tolerations = pod_spec(one(default_objects, "Pod", "test"))["tolerations"]
    assert {"key": "aws.amazon.com/neuron", "operator": "Exists", "effect": "NoSchedule"} in (
        tolerations
    )


def test_hook_node_selector_tolerations_and_pull_secrets():
    pod = hook_pod(
        {
            "test": {
                "nodeSelector": {"pool": "neuron"},
                "tolerations": [{"key": "k", "operator": "Exists"}],
                "imagePullSecrets": [{"name": "regcred"}],
            }
        }
    )
    assert pod_spec(pod)["nodeSelector"] == {"pool": "neuron"}
    assert pod_spec(pod)["tolerations"] == [{"key": "k", "operator": "Exists"}]
    assert pod_spec(pod)["imagePullSecrets"] == [{"name": "regcred"}]


def test_hook_disabled():
    assert objects_of(render({"test": {"enabled": False}}), "Pod") == []


def test_no_hook_without_the_device_plugin():
    assert objects_of(render({"devicePlugin": {"enabled": False}}), "Pod") == []


@pytest.mark.parametrize(
    ("values", "cores"),
    [
        (None, "3"),
        ({"test": {"count": 4}}, "4,5,6,7"),
        ({"test": {"count": 2, "resource": "aws.amazon.com/neuron"}}, "0,1,2,3"),
    ],
)
def test_hook_script_accepts_a_contiguous_set_of_the_right_size(values, cores):
    result = run_script(hook_pod(values), cores)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"NEURON_RT_VISIBLE_CORES='{cores}'" in result.stdout


@pytest.mark.parametrize(
    ("values", "cores", "reason"),
    [
        (None, None, "not set or empty"),
        (None, "", "not set or empty"),
        (None, "0-1", "not a comma-separated list of integers"),
        ({"test": {"count": 2}}, "0,2", "not one contiguous block"),
        ({"test": {"count": 2}}, "1,1", "not one contiguous block"),
        ({"test": {"count": 2}}, "0,1,2", "asked for 2 cores, got 3"),
        ({"test": {"count": 2, "resource": "aws.amazon.com/neuron"}}, "0", "whole devices"),
    ],
)
def test_hook_script_refuses_a_wrong_set(values, cores, reason):
    result = run_script(hook_pod(values), cores)
    assert result.returncode == 1
    assert reason in result.stdout


def test_notes_list_what_was_installed():
    text = notes()
    assert "DaemonSet neuron-device-plugin" in text
    assert "Deployment and Service neuron-extender" in text
    assert 'Deployment neuron-scheduler, schedulerName "my-scheduler"' in text


def test_notes_show_allocatable_cores_command():
    assert (
        'kubectl get nodes "-o=custom-columns=NAME:.metadata.name,'
        'NeuronCore:.status.allocatable.aws\\.amazon\\.com/neuroncore"'
    ) in notes()


def test_notes_example_pod_uses_scheduler_name():
    text = notes()
    assert "schedulerName: my-scheduler" in text
    assert "aws.amazon.com/neuroncore: 2" in text


def test_notes_example_pod_without_scheduler_has_no_scheduler_name():
    assert "schedulerName:" not in notes({"scheduler": {"enabled": False}})


def test_notes_mention_helm_test():
    assert "helm test neuron -n neuron-system --logs" in notes()


def test_notes_mention_fake_mode():
    values = {"devicePlugin": {"fake": {"enabled": True, "instanceType": "inf2.xlarge"}}}
    assert "fake-device mode" in notes(values)


@pytest.fixture(scope="module")
def notes_at(tmp_path_factory):
    chart = tmp_path_factory.mktemp("chart") / CHART.name
    shutil.copytree(CHART, chart)
    (chart / "templates" / "notes-probe.yaml").write_text(NOTES_PROBE)

    def at(kube_version: str, dra: dict) -> str:
        args = ["template", RELEASE, str(chart), "--namespace", NAMESPACE]
        args += ["--kube-version", kube_version, "--show-only", "templates/notes-probe.yaml"]
        args += [
            "--set",
            f"implementation={IMPLEMENTATION}",
            "--set-json",
            f"dra={json.dumps({**dra, 'image': {'pullPolicy': 'Never'}})}",
            "--set-json",
            'devicePlugin={"image": {"pullPolicy": "Never"}}',
            "--set-json",
            'extender={"image": {"pullPolicy": "Never"}}',
        ]
        result = helm(*args)
        assert result.returncode == 0, result.stderr
        return str(yaml.safe_load(result.stdout)["data"]["notes"])

    return at


def test_the_notes_show_a_claim_for_adjacent_devices_when_partitions_are_on(notes_at):
    text = notes_at(KUBE_VERSION, {**ON, "corePartitions": {"enabled": True}})
    assert "Two adjacent devices (count: 2 alone means any 2): deviceClassName" in text
    assert "deviceClassName neurondevices.aws.com, count 1" in text
    assert 'device.attributes["neuron.aws.com"].deviceCount == 2' in text


@pytest.mark.parametrize(
    ("kube_version", "warned"), [(DRA_BEFORE_136, True), (KUBE_VERSION, False)]
)
def test_the_notes_warn_that_partitions_are_off_by_default_before_kubernetes_1_36(
    notes_at, kube_version, warned
):
    text = notes_at(kube_version, {**ON, "corePartitions": {"enabled": True}})
    warning = (
        f"WARNING: this cluster is {kube_version}, before 1.36: DRAPartitionableDevices is off"
    )
    assert (warning in text) is warned
    assert "DRAExtendedResource is off" not in text


@pytest.mark.parametrize(
    ("kube_version", "warned"), [(DRA_BEFORE_136, True), (KUBE_VERSION, False)]
)
def test_the_notes_warn_that_the_extended_resource_is_off_by_default_before_kubernetes_1_36(
    notes_at, kube_version, warned
):
    text = notes_at(kube_version, {**ON, "extendedResourceName": "aws.amazon.com/neuron"})
    warning = f"WARNING: this cluster is {kube_version}, before 1.36: DRAExtendedResource is off"
    assert (warning in text) is warned
    assert "DRAPartitionableDevices is off" not in text


def test_the_notes_warn_of_nothing_before_kubernetes_1_36_with_no_partitions_or_mapping(
    notes_at,
):
    assert "before 1.36" not in notes_at(DRA_BEFORE_136, ON)
