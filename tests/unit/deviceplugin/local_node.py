"""One node in-process, without gRPC or HTTP: the plugin's allocation service and reconciler
over a dict of pod objects (the pod view, patches applied at once), a PodResources stand-in,
the kubelet's device manager (dp_harness.Admission) and an extender stand-in that plans each
pod on the cores no pod's record claims (as extender/state.py does). Used by the hand-off
properties, the reconciler's tests and the record fuzzer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dp_harness import Admission, make_pod
from neuron_k8s.allocator import NoFit, Resource, choose_all, mask
from neuron_k8s.deviceplugin.allocation import AllocationService
from neuron_k8s.deviceplugin.discovery import Inventory
from neuron_k8s.deviceplugin.ledger import Snapshot
from neuron_k8s.deviceplugin.metrics import Metrics
from neuron_k8s.deviceplugin.podview import NodePod, node_pod
from neuron_k8s.deviceplugin.reconcile import Reconciler
from neuron_k8s.deviceplugin.state import PluginState
from neuron_k8s.pods import ContainerAllocation, allocation_annotations, container_requests
from neuron_k8s.topology import shape_for

NODE = "n"


class LocalPods:
    """The plugin's pod view over a dict of pod objects, with patches applied at once (or,
    with `apply_patches` off, recorded only: a watch that has not shown them yet)."""

    def __init__(self, shape: Any) -> None:
        self.shape = shape
        self.node = NODE
        self.synced = True
        self.objects: dict[str, dict[str, Any]] = {}
        self.patches: list[tuple[str, dict[str, str]]] = []
        self.apply_patches = True

    def pods(self) -> dict[str, NodePod]:
        return {uid: node_pod(obj, self.shape, NODE) for uid, obj in self.objects.items()}

    def wait(self, until: Callable[[dict[str, NodePod]], bool], timeout: float) -> bool:
        return until(self.pods())

    def patch(self, pod: NodePod, notes: dict[str, str]) -> bool:
        self.patches.append((pod.name, dict(notes)))
        if self.apply_patches:
            self.objects[pod.uid]["metadata"]["annotations"].update(notes)
        return True


class LocalPodResources:
    """`assigned` as dp_harness.FakePodResources; `down` makes List fail."""

    def __init__(self) -> None:
        self.assigned: dict[tuple[str, str, str], dict[str, list[str]]] = {}
        self.pods: set[tuple[str, str]] = set()
        self.time = 0.0
        self.down = False

    def list(self) -> Snapshot | None:
        if self.down:
            return None
        self.time += 10.0  # later than every answer so far by more than confirm_after
        listing = {
            k: {Resource(r): tuple(int(i) for i in ids) for r, ids in v.items()}
            for k, v in self.assigned.items()
        }
        pods = self.pods | {k[:2] for k in self.assigned}
        return Snapshot(listing, frozenset(pods), self.time)


class Node:
    def __init__(self, instance_type: str, withhold_in_use: bool = False) -> None:
        self.shape = shape_for(instance_type)
        self.metrics = Metrics()
        self.state = PluginState(Inventory(self.shape), self.metrics, withhold_in_use)
        self.pods = LocalPods(self.shape)
        self.pr = LocalPodResources()
        self.service = AllocationService(
            self.state,
            self.metrics,
            self.pods,  # type: ignore[arg-type]
            self.pr,  # type: ignore[arg-type]
            wait_for_pod=0.0,
        )
        self.reconciler = Reconciler(self.state, self.pods, self.pr, self.metrics)  # type: ignore[arg-type]
        self.kubelet = Admission(self.pr, self._preferred, self._allocate, self._health)
        self.got: dict[str, dict[str, list[int]]] = {}  # pod -> container -> cores

    def _preferred(
        self, resource: str, offered: list[str], size: int, must: list[str]
    ) -> list[str]:
        return self.service.preferred(Resource(resource), offered, must, size)

    def _allocate(self, resource: str, ids: list[str]) -> str:
        (grant,) = self.service.allocate(Resource(resource), [ids])
        return grant.env["NEURON_RT_VISIBLE_CORES"]

    def _health(self, resource: str) -> dict[str, str]:
        _, view = self.state.view(Resource(resource))
        return {i: "Healthy" if ok else "Unhealthy" for i, ok in view}

    # --- the extender -------------------------------------------------------------------
    def bind(
        self,
        name: str,
        containers: list[tuple[str, str, int]],
        init: list[tuple[str, str, int]] | None = None,
    ) -> bool:
        pod = make_pod(name, NODE, containers, init=init)
        used = 0
        for other in self.pods.pods().values():
            for a in other.plan or () if other.holds else ():
                used |= mask(a.placement.cores)
        creqs = container_requests(pod)
        try:
            placed = choose_all(self.shape, [c.request for c in creqs], used)
        except NoFit:
            return False
        allocations = [
            ContainerAllocation(c.container, p) for c, p in zip(creqs, placed, strict=True)
        ]
        pod["metadata"]["annotations"].update(
            allocation_annotations(NODE, allocations, len(self.pods.objects))
        )
        self.pods.objects[pod["metadata"]["uid"]] = pod
        return True

    def plan_of(self, name: str) -> dict[str, list[int]]:
        pod = node_pod(self.pods.objects[f"uid-default-{name}"], self.shape, NODE)
        return {a.container: list(a.placement.cores) for a in pod.plan or ()}

    # --- the kubelet --------------------------------------------------------------------
    def admit(self, name: str, follow: bool = True) -> None:
        obj = self.pods.objects[f"uid-default-{name}"]
        containers: list[tuple[str, str, int, str]] = []
        for c in obj["spec"].get("initContainers", []):
            stage = "sidecar" if c.get("restartPolicy") == "Always" else "init"
            containers.append((*_only_request(c), stage))
        containers += [(*_only_request(c), "app") for c in obj["spec"]["containers"]]
        envs = self.kubelet.admit(name, containers, follow=follow)
        self.got[name] = {c: [int(x) for x in e.split(",")] for c, e in envs.items()}
        obj["status"]["containerStatuses"] = [{"name": c[0]} for c in containers]

    def delete(self, name: str) -> None:
        self.kubelet.remove(name)
        obj = self.pods.objects.pop(f"uid-default-{name}")
        self.got.pop(name, None)
        with self.state.lock:
            self.state.ledger.forget_pod("default", name, obj["metadata"]["uid"])

    def recorded(self, name: str) -> dict[str, list[int]]:
        return self.plan_of(name)


def _only_request(container: dict[str, Any]) -> tuple[str, str, int]:
    (resource, count), *_ = container["resources"]["limits"].items()
    return container["name"], resource, int(count)
