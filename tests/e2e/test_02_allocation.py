"""One pod through my-scheduler, the extender, the kubelet and the plugin."""

import pytest
from conftest import NEURONCORE, Pods, contiguous

pytestmark = pytest.mark.matrix


def test_pod_runs_with_contiguous_cores_that_match_the_extenders_annotations(pods: Pods) -> None:
    pods.create("two-cores", [{NEURONCORE: 2}])
    pod = pods.wait_running("two-cores")
    cores = pods.cores("two-cores")
    assert len(cores) == 2 and contiguous(cores), cores
    annotations = pod.metadata.annotations
    assert [int(i) for i in annotations["AWS_NEURON_IDS"].split(",")] == cores
    assert int(annotations["NEURON_ALLOC_TIME"]) > 0
    allocation = pods.allocation("two-cores")
    assert allocation["node"] == pod.spec.node_name
    assert allocation["containers"][0]["cores"] == cores


def test_pod_is_marked_allocated_by_the_plugin(pods: Pods) -> None:
    pods.create("marked", [{NEURONCORE: 1}])
    pods.wait_running("marked")
    pods.cores("marked")
    assert pods.get("marked").metadata.annotations["NEURON_ALLOCATED"] == "true"
