"""The DRA run of bench_scale.py (and the sizes benchmark): the same nodes as ResourceSlices,
built with the driver's own slice builders (dra/devices.py, and dra/partitions.py with core
partitions) and created through the API as the driver would publish them, the DeviceClasses as
the chart renders them, ResourceClaimTemplates, pods whose claims come from those templates,
and a kube-controller-manager running the ResourceClaim controller only (it makes each pod's
claim from its template; the default scheduler then allocates it).
"""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import yaml
from neuron_k8s.dra import partitions
from neuron_k8s.dra.devices import (
    DEFAULT_DRIVER,
    GROUP_DOMAIN,
    Versions,
    chunked,
    devices,
    slices_of,
)
from neuron_k8s.topology import shape_for
from scale_cluster import KUBERNETES_VERSION, REPO, ControlPlane, Process, binaries, free_port
from scale_schedulers import wait_https_ok
from scale_tools import helm

DEVICE_CLASS = DEFAULT_DRIVER
CORE_CLASS = "neuroncore.aws.com"  # the chart's dra.corePartitions.deviceClassName
VERSIONS = Versions(driver="0.1.0", neuron_driver="fake")
CORE, DEVICE = "aws.amazon.com/neuroncore", "aws.amazon.com/neuron"
SLICES = "/apis/resource.k8s.io/v1/resourceslices"


def node_contents(instance_type: str, node: str, choice: str | None) -> list[dict[str, Any]]:
    """One node's slice contents as the driver builds them: whole devices only (`choice`
    None), or the partitions layout with the core sets of `choice` (CORE_SET_CHOICES)."""
    shape = shape_for(instance_type)
    if choice is None:
        return chunked(devices(shape, node, VERSIONS))
    return partitions.contents(shape, node, VERSIONS, choice=choice)


def publish(
    plane: ControlPlane, types: dict[str, str], choice: str | None, threads: int = 8
) -> tuple[int, int]:
    """Every node's ResourceSlices (one pool per node, named after it) created through the
    API, each node's built in the thread that posts it; (slices, devices)."""
    client = plane.client()
    nodes = list(types.items())

    def post(chunk: list[tuple[str, str]]) -> tuple[int, int]:
        count = devices_in = 0
        for node, instance_type in chunk:
            contents = node_contents(instance_type, node, choice)
            for body in slices_of(node, DEFAULT_DRIVER, contents, 1):
                client.post(SLICES, body)
                count += 1
                devices_in += len(body["spec"].get("devices", []))
        return count, devices_in

    with ThreadPoolExecutor(threads) as pool:
        done = list(pool.map(post, [nodes[i::threads] for i in range(threads)]))
    return sum(c for c, _ in done), sum(d for _, d in done)


def device_classes(partitioned: bool) -> list[dict[str, Any]]:
    """The chart's DeviceClasses, rendered by helm as an install with the DRA driver makes
    them (the device plugin off, as on a DRA-only cluster)."""
    values = {
        "implementation": "neuron-k8s",
        "devicePlugin.enabled": "false",
        "dra.enabled": "true",
        "dra.corePartitions.enabled": str(partitioned).lower(),
        # Only the DeviceClasses are used: no image is pulled, none needs a registry.
        "dra.image.pullPolicy": "Never",
        "extender.image.pullPolicy": "Never",
    }
    args = [helm(), "template", "neuron", str(REPO / "charts" / "neuron")]
    args += ["--kube-version", KUBERNETES_VERSION]
    for key, value in values.items():
        args += ["--set", f"{key}={value}"]
    rendered = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    classes = [d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "DeviceClass"]
    for c in classes:
        c["metadata"] = {"name": c["metadata"]["name"]}
    return classes


def device_request(name: str, device_class: str, count: int, cel: str = "") -> dict[str, Any]:
    exactly: dict[str, Any] = {"deviceClassName": device_class, "count": count}
    if cel:
        exactly["selectors"] = [{"cel": {"expression": cel}}]
    return {"name": name, "exactly": exactly}


def core_count_cel(count: int, driver: str = DEFAULT_DRIVER) -> str:
    return f'device.attributes["{driver}"].coreCount == {count}'


def template_spec(
    kind: tuple[str, int], partitioned: bool
) -> tuple[str, dict[str, Any], tuple[str, int]]:
    """A pod kind of bench_scale.py's mixes as a claim: (template name, claim spec, what it
    asks for). n devices: one device, or n connected ones (matchAttribute on the
    devicegroup<n>_id that aligned shapes publish: of the run's nodes only trn1.32xlarge has a
    group of 4); n cores: one core set of n cores with core partitions, else one whole device."""
    resource, count = kind
    if resource == CORE and partitioned:
        request = device_request("cores", CORE_CLASS, 1, core_count_cel(count))
        return f"cores-{count}", {"devices": {"requests": [request]}}, (CORE, count)
    if resource == CORE or count == 1:
        spec = {"devices": {"requests": [device_request("neuron", DEVICE_CLASS, 1)]}}
        return "device-1", spec, (DEVICE, 1)
    attribute = f"{GROUP_DOMAIN}/devicegroup{count}_id"
    spec = {
        "devices": {
            "requests": [device_request("neuron", DEVICE_CLASS, count)],
            "constraints": [{"requests": ["neuron"], "matchAttribute": attribute}],
        }
    }
    return f"devices-{count}-connected", spec, (DEVICE, count)


def claim_template(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaimTemplate",
        "metadata": {"name": name},
        "spec": {"spec": spec},
    }


def dra_pod_body(
    name: str, scheduler: str, template: str, node_selector: dict[str, str] | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "schedulerName": scheduler,
        "resourceClaims": [{"name": "neuron", "resourceClaimTemplateName": template}],
        "containers": [
            {
                "name": "c0",
                "image": "bench",
                "resources": {
                    "requests": {"cpu": "10m", "memory": "16Mi"},
                    "claims": [{"name": "neuron"}],
                },
            }
        ],
    }
    if node_selector:
        spec["nodeSelector"] = node_selector
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def start_claim_controller(plane: ControlPlane, qps: int) -> Process:
    """kube-controller-manager with the ResourceClaim controller only, held to the same API
    client limits as the schedulers."""
    port = free_port()
    proc = Process(
        "kube-controller-manager",
        [
            str(binaries("kube-controller-manager")["kube-controller-manager"]),
            f"--kubeconfig={plane.kubeconfig}",
            f"--authentication-kubeconfig={plane.kubeconfig}",
            f"--authorization-kubeconfig={plane.kubeconfig}",
            "--controllers=resourceclaim-controller",
            "--leader-elect=false",
            f"--kube-api-qps={qps}",
            f"--kube-api-burst={qps}",
            "--concurrent-resourceclaim-syncs=50",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            "--v=0",
        ],
        plane.workdir,
    )
    proc.port = port
    plane.processes.append(proc)
    wait_https_ok(port, proc)
    return proc
