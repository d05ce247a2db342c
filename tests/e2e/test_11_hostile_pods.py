"""Pods written by their owners to hurt Neuron scheduling (issue 18): the chart's policy keeps
the records to the stack, and where it is off, a hand-written record changes nothing. And an
ordinary shape that used to leave cores held: a Job with a Neuron init container."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import (
    ALLOCATION,
    IMAGE,
    NEURON,
    NEURONCORE,
    PULL_POLICY,
    SCHEDULER,
    Cluster,
    Pods,
    needs_kind,
    restart_component,
    wait_for,
)
from kubernetes import client, config
from kubernetes.client.rest import ApiException

INF2 = "inf2.48xlarge"
CORES = 24  # inf2.48xlarge: 12 devices of 2 cores
AWS_NEURON_IDS = "AWS_NEURON_IDS"
RECORD_KEYS = (ALLOCATION, AWS_NEURON_IDS, "NEURON_ALLOCATED", "NEURON_ALLOC_TIME")
OWNER = "jane"
NOBODY = "nobody-schedules-this"


def record(node: str, cores: list[int]) -> dict[str, str]:
    """The record keys as the extender writes them (pods.allocation_annotations), for one
    container `c` holding `cores` as aws.amazon.com/neuroncore."""
    detail = {
        "node": node,
        "containers": [
            {
                "name": "c",
                "resource": NEURONCORE,
                "ids": cores,
                "cores": cores,
                "devices": sorted({c // 2 for c in cores}),
            }
        ],
    }
    return {
        ALLOCATION: json.dumps(detail, separators=(",", ":"), sort_keys=True),
        AWS_NEURON_IDS: ",".join(str(c) for c in cores),
        "NEURON_ALLOCATED": "true",
        "NEURON_ALLOC_TIME": "1",
    }


def plain_pod(name: str, annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    limits = spec.pop("limits", None)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "tolerations": [{"operator": "Exists"}],
            "containers": [
                {
                    "name": "c",
                    "image": IMAGE,
                    "imagePullPolicy": PULL_POLICY,
                    "command": ["sleep", "3600"],
                    "resources": {"limits": limits} if limits else {},
                }
            ],
            **spec,
        },
    }


def records_binding(cluster: Cluster) -> client.V1ValidatingAdmissionPolicyBinding:
    """The chart's binding of the policy that keeps the pods' records to the stack."""
    api = client.AdmissionregistrationV1Api()
    found = [
        b
        for b in api.list_validating_admission_policy_binding().items
        if "record" in b.spec.policy_name
    ]
    assert found, "no ValidatingAdmissionPolicyBinding for the pods' records in the cluster"
    return found[0]


# --- (a) the policy ----------------------------------------------------------------------------
@pytest.fixture
def owner(cluster: Cluster, pods: Pods) -> client.CoreV1Api:
    """The API as a plain user who may create, change and delete pods in the test namespace."""
    needs_kind()
    rbac = client.RbacAuthorizationV1Api()
    rule = {"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]}
    rbac.create_namespaced_role(
        pods.namespace, {"metadata": {"name": "pod-owner"}, "rules": [rule]}
    )
    binding = {
        "metadata": {"name": "pod-owner"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-owner"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": OWNER}],
    }
    rbac.create_namespaced_role_binding(pods.namespace, binding)
    api = config.new_client_from_config(config_file=cluster.kubeconfig)
    api.set_default_header("Impersonate-User", OWNER)
    return client.CoreV1Api(api)


def refusal(call: Any) -> str:
    with pytest.raises(ApiException) as err:
        call()
    return str(err.value.body)


@pytest.mark.parametrize("key", RECORD_KEYS)
def test_a_pod_owner_cannot_create_a_pod_with_a_record(
    cluster: Cluster, pods: Pods, owner: client.CoreV1Api, key: str
) -> None:
    records_binding(cluster)
    node = cluster.node_of_type(INF2)
    body = plain_pod("forged", {key: record(node, [0, 1])[key]}, schedulerName=NOBODY)
    message = refusal(lambda: owner.create_namespaced_pod(pods.namespace, body))
    assert key in message, message
    # The owner may create pods: it is the record that is refused.
    owner.create_namespaced_pod(pods.namespace, plain_pod("honest", schedulerName=NOBODY))


@pytest.mark.parametrize("key", RECORD_KEYS)
def test_a_pod_owner_cannot_add_a_record_later(
    cluster: Cluster, pods: Pods, owner: client.CoreV1Api, key: str
) -> None:
    records_binding(cluster)
    node = cluster.node_of_type(INF2)
    owner.create_namespaced_pod(pods.namespace, plain_pod("mine", schedulerName=NOBODY))
    patch = {"metadata": {"annotations": {key: record(node, [0, 1])[key]}}}
    message = refusal(lambda: owner.patch_namespaced_pod("mine", pods.namespace, patch))
    assert key in message, message
    owner.patch_namespaced_pod("mine", pods.namespace, {"metadata": {"annotations": {"a": "b"}}})


# --- (b) the code's own safety, with the policy off --------------------------------------------
@pytest.fixture
def policy_off(cluster: Cluster) -> Iterator[None]:
    """The records policy's binding deleted for the test, and restored after it."""
    needs_kind()
    api = client.AdmissionregistrationV1Api()
    saved = records_binding(cluster)
    api.delete_validating_admission_policy_binding(saved.metadata.name)
    try:
        yield
    finally:
        meta = saved.metadata
        body = client.V1ValidatingAdmissionPolicyBinding(
            metadata=client.V1ObjectMeta(
                name=meta.name, labels=meta.labels, annotations=meta.annotations
            ),
            spec=saved.spec,
        )
        api.create_validating_admission_policy_binding(body)


@pytest.fixture
def hostile(cluster: Cluster, pods: Pods, policy_off: None) -> str:
    """On the inf2 device-plugin node: a pod there with a record of core -1, one with a record
    of no cores, and an unbound pending pod whose well-formed record names every core of the
    node. Returns the node."""
    node = cluster.node_of_type(INF2)
    everything = list(range(CORES))
    bodies = [
        plain_pod("negative", record(node, [-1]), nodeName=node),
        plain_pod("empty", record(node, []), nodeName=node),
        plain_pod(
            "squatter",
            record(node, everything),
            schedulerName=NOBODY,
            limits={NEURONCORE: str(CORES)},
        ),
    ]

    def create(body: dict[str, Any]) -> bool:
        # The API server learns of the deleted binding within a few seconds.
        try:
            cluster.core.create_namespaced_pod(pods.namespace, body)
        except ApiException as err:
            if err.status == 409:
                return True
            if err.status in (400, 403, 422):
                return False
            raise
        return True

    for body in bodies:
        wait_for(
            f"{body['metadata']['name']} created with its record", lambda b=body: create(b), 30
        )
    pods.wait_running("negative")
    pods.wait_running("empty")
    assert pods.get("squatter").spec.node_name is None
    return node


def test_hand_written_records_leave_the_node_to_a_real_pod(pods: Pods, hostile: str) -> None:
    pods.create("real", [{NEURONCORE: 2}], node=hostile)
    pods.wait_running("real")
    assert len(pods.cores("real")) == 2


def test_the_extender_restarts_cleanly_with_hand_written_records_present(
    cluster: Cluster, pods: Pods, hostile: str
) -> None:
    restart_component(cluster, "extender")
    pods.create("after-restart", [{NEURONCORE: 2}], node=hostile)
    pods.wait_running("after-restart", timeout=60)
    assert len(pods.cores("after-restart")) == 2


# --- (c) a Job with a Neuron init container ---------------------------------------------------
def job(name: str, node: str) -> dict[str, Any]:
    def c(cname: str, then: str) -> dict[str, Any]:
        return {
            "name": cname,
            "image": IMAGE,
            "imagePullPolicy": PULL_POLICY,
            "command": ["sh", "-c", f'echo "CORES=$NEURON_RT_VISIBLE_CORES"; {then}'],
            "resources": {"limits": {NEURON: "1"}},
        }

    spec = {
        "schedulerName": SCHEDULER,
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 0,
        "nodeSelector": {"kubernetes.io/hostname": node},
        "initContainers": [c("warmup", "sleep 1")],
        "containers": [c("c0", "sleep 2")],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": {"spec": spec}},
    }


def test_after_a_job_with_a_neuron_init_container_the_next_pod_on_its_cores_runs(
    cluster: Cluster, pods: Pods
) -> None:
    needs_kind()
    node = cluster.node_of_type(INF2)
    # Eleven of the twelve devices held: the Job, and then the pod after it, can only have
    # the twelfth.
    pods.create("filler", [{NEURON: 11}], node=node)
    pods.wait_running("filler")
    batch = client.BatchV1Api()
    batch.create_namespaced_job(pods.namespace, job("warm", node))

    def succeeded() -> bool:
        return (batch.read_namespaced_job("warm", pods.namespace).status.succeeded or 0) >= 1

    wait_for("the Job to complete", succeeded, 120)
    done = cluster.core.list_namespaced_pod(pods.namespace, label_selector="job-name=warm").items
    assert [p.status.phase for p in done] == ["Succeeded"]
    used = pods.cores(done[0].metadata.name)
    assert not set(used) & set(pods.cores("filler"))

    pods.create("next", [{NEURONCORE: 2}], node=node)
    pods.wait_running("next", timeout=60)
    assert pods.cores("next") == used
