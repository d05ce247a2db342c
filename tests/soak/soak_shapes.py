"""The pods the soak creates, one shape after another: on the device-plugin nodes through
my-scheduler (cores, whole devices, a regular Neuron init container, a sidecar, a Job that
finishes), on the DRA nodes through ResourceClaimTemplates of one and of two requests and the
extended resource. Pure: request bodies only. Every container prints the cores it got as
CORES=<NEURON_RT_VISIBLE_CORES>, which the soak reads from its log."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

NEURON = "aws.amazon.com/neuron"
NEURONCORE = "aws.amazon.com/neuroncore"
DRIVER = "neuron.aws.com"
CORE_CLASS = "neuroncore.aws.com"
LABELS = {"soak": "churn"}
# Claim templates, made once per run: name -> its requests as (request name, class, count of
# whole devices or, for the core class, cores in the one set).
TEMPLATES = {
    "one-device": (("neurons", DRIVER, 1),),
    "one-coreset": (("cores", CORE_CLASS, 2),),
    "two-requests": (("first", DRIVER, 1), ("second", CORE_CLASS, 2)),
}


def container(name: str, resource: str | None, count: int, then: str) -> dict[str, Any]:
    """A container that asks for `count` of `resource`, prints its cores, then runs `then`."""
    body: dict[str, Any] = {
        "name": name,
        "image": "@IMAGE@",
        "imagePullPolicy": "Never",
        "command": ["sh", "-c", f'echo "CORES=$NEURON_RT_VISIBLE_CORES"; {then}'],
        "resources": {"requests": {"cpu": "1m", "memory": "8Mi"}},
    }
    if resource:
        body["resources"]["limits"] = {resource: str(count)}
    return body


HOLD = "exec sleep 3600"


def pod_spec(node: str, containers: list[dict[str, Any]], scheduler: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "terminationGracePeriodSeconds": 0,
        "nodeSelector": {"kubernetes.io/hostname": node},
        "containers": containers,
    }
    if scheduler:
        spec["schedulerName"] = scheduler
    return spec


def pod(name: str, spec: dict[str, Any], shape: str) -> dict[str, Any]:
    meta = {"name": name, "labels": {**LABELS, "shape": shape}}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


@dataclass(frozen=True)
class Shape:
    name: str
    path: str  # "plugin" (device-plugin nodes, my-scheduler) or "dra"
    kind: str  # "Pod" or "Job"
    build: Callable[[str, str, int, str], dict[str, Any]]  # (name, node, turn, scheduler)


def _cores(name: str, node: str, turn: int, sched: str) -> dict[str, Any]:
    n = (1, 2, 4)[turn % 3]
    return pod(name, pod_spec(node, [container("c0", NEURONCORE, n, HOLD)], sched), "cores")


# Whole-device counts every imitated instance type takes: trn1.32xlarge only blocks of 1, 4, 8
# or 16 devices; inf2.48xlarge any contiguous run.
DEVICE_COUNTS = (1, 4)


def _devices(name: str, node: str, turn: int, sched: str) -> dict[str, Any]:
    n = DEVICE_COUNTS[turn % 2]
    return pod(name, pod_spec(node, [container("c0", NEURON, n, HOLD)], sched), "devices")


def _init(name: str, node: str, turn: int, sched: str) -> dict[str, Any]:
    # The app container grows from the init container's device (the kubelet reuses its IDs):
    # one device and four is the shape that needs init and app placed jointly.
    spec = pod_spec(node, [container("c0", NEURON, DEVICE_COUNTS[turn % 2], HOLD)], sched)
    spec["initContainers"] = [container("warmup", NEURON, 1, "sleep 2")]
    return pod(name, spec, "init")


def _sidecar(name: str, node: str, turn: int, sched: str) -> dict[str, Any]:
    spec = pod_spec(node, [container("c0", NEURONCORE, 2, HOLD)], sched)
    side = container("side", NEURONCORE, 1, HOLD)
    side["restartPolicy"] = "Always"
    spec["initContainers"] = [side]
    return pod(name, spec, "sidecar")


def _job(name: str, node: str, turn: int, sched: str) -> dict[str, Any]:
    spec = pod_spec(node, [container("c0", NEURON, 1, "sleep 6")], sched)
    spec["initContainers"] = [container("warmup", NEURON, 1, "sleep 2")]
    spec["restartPolicy"] = "Never"
    template = {"metadata": {"labels": {**LABELS, "shape": "job"}}, "spec": spec}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": LABELS},
        "spec": {"backoffLimit": 0, "template": template},
    }


def _claim(template: str) -> Callable[[str, str, int, str], dict[str, Any]]:
    def build(name: str, node: str, turn: int, sched: str) -> dict[str, Any]:
        c = container("c0", None, 0, HOLD)
        c["resources"]["claims"] = [{"name": "neuron"}]
        spec = pod_spec(node, [c], None)
        spec["resourceClaims"] = [{"name": "neuron", "resourceClaimTemplateName": template}]
        return pod(name, spec, template)

    return build


def _extended(name: str, node: str, turn: int, sched: str) -> dict[str, Any]:
    return pod(name, pod_spec(node, [container("c0", NEURON, 1, HOLD)], None), "extended")


SHAPES = (
    Shape("cores", "plugin", "Pod", _cores),
    Shape("one-device", "dra", "Pod", _claim("one-device")),
    Shape("devices", "plugin", "Pod", _devices),
    Shape("two-requests", "dra", "Pod", _claim("two-requests")),
    Shape("init", "plugin", "Pod", _init),
    Shape("one-coreset", "dra", "Pod", _claim("one-coreset")),
    Shape("sidecar", "plugin", "Pod", _sidecar),
    Shape("extended", "dra", "Pod", _extended),
    Shape("job", "plugin", "Job", _job),
)


def with_image(body: dict[str, Any], image: str) -> dict[str, Any]:
    """The body with every container's image set (shapes are written with a placeholder)."""
    spec = body["spec"]["template"]["spec"] if body["kind"] == "Job" else body["spec"]
    for c in [*spec.get("initContainers", []), *spec["containers"]]:
        c["image"] = image
    return body


def claim_template(name: str) -> dict[str, Any]:
    requests = []
    for req, device_class, count in TEMPLATES[name]:
        exactly: dict[str, Any] = {"deviceClassName": device_class, "allocationMode": "ExactCount"}
        if device_class == CORE_CLASS:
            exactly["count"] = 1
            expr = f'device.attributes["{DRIVER}"].coreCount == {count}'
            exactly["selectors"] = [{"cel": {"expression": expr}}]
        else:
            exactly["count"] = count
        requests.append({"name": req, "exactly": exactly})
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaimTemplate",
        "metadata": {"name": name},
        "spec": {"spec": {"devices": {"requests": requests}}},
    }
