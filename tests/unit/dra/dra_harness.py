"""Stand-ins for the kubelet and the Kubernetes API, for driving the DRA driver in tests and in
plugin-src/bench/bench_dra.py, and the claims and driver settings the tests use.

FakeApi (fake_api.py, re-exported here) is the API server. FakeKubelet does what the kubelet's
plugin watcher does with a DRA driver: it polls the registry directory for *-reg.sock files,
asks each new one GetInfo, answers NotifyRegistrationStatus, and hands out DRAPlugin clients
(v1 and v1beta1) of the endpoint GetInfo named, and DRAResourceHealth clients of the same
endpoint, which HealthWatch reads as the kubelet's DRA manager does.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from fake_api import CLAIMS as CLAIMS
from fake_api import DRIVER, INSTANCE_TYPE_LABEL
from fake_api import SLICES as SLICES
from fake_api import FakeApi as FakeApi
from neuron_k8s._proto import (
    dra_v1_pb2,
    dra_v1_pb2_grpc,
    dra_v1beta1_pb2,
    dra_v1beta1_pb2_grpc,
    drahealth_v1_pb2,
    drahealth_v1_pb2_grpc,
    drahealth_v1alpha1_pb2,
    drahealth_v1alpha1_pb2_grpc,
)
from neuron_k8s._proto import pluginregistration_v1_pb2 as reg_pb
from neuron_k8s._proto import pluginregistration_v1_pb2_grpc as reg_grpc
from neuron_k8s.dra.driver import Config, Driver
from waiting import wait_until as wait_until  # re-exported to the tests

NODE = "node-a"
NODE_TYPE = "trn1.32xlarge"  # 16 devices x 2 cores, aligned blocks

# version name GetInfo advertises -> (messages module, service module)
DRA_VERSIONS: dict[str, tuple[Any, Any]] = {
    "v1": (dra_v1_pb2, dra_v1_pb2_grpc),
    "v1beta1": (dra_v1beta1_pb2, dra_v1beta1_pb2_grpc),
}
# The 1.37 kubelet's DRAResourceHealth services (healthServicesSupportedByKubelet), newest first
# -> (messages module, service module).
HEALTH_SERVICES: dict[str, tuple[Any, Any]] = {
    "v1.DRAResourceHealth": (drahealth_v1_pb2, drahealth_v1_pb2_grpc),
    "v1alpha1.DRAResourceHealth": (drahealth_v1alpha1_pb2, drahealth_v1alpha1_pb2_grpc),
}


# --- claims ----------------------------------------------------------------------------------
def result(request: str, device: int | str, pool: str, driver: str = DRIVER) -> dict[str, Any]:
    """One entry of status.allocation.devices.results."""
    name = device if isinstance(device, str) else f"neurondevice{device}"
    return {"request": request, "driver": driver, "pool": pool, "device": name}


def neuron_config(
    lnc: Any = None,
    source: str = "FromClaim",
    requests: Sequence[str] = (),
    driver: str = DRIVER,
    **fields: Any,
) -> dict[str, Any]:
    """One entry of status.allocation.devices.config: an opaque NeuronConfig; `fields` go into
    (and may override) its parameters."""
    parameters: dict[str, Any] = {"apiVersion": "neuron.aws.com/v1", "kind": "NeuronConfig"}
    if lnc is not None:
        parameters["logicalNeuronCore"] = lnc
    parameters.update(fields)
    entry: dict[str, Any] = {
        "source": source,
        "opaque": {"driver": driver, "parameters": parameters},
    }
    if requests:
        entry["requests"] = list(requests)
    return entry


def make_claim(
    name: str,
    devices: Mapping[str, Sequence[int]] | None = None,
    pool: str = "",
    results: Sequence[dict[str, Any]] = (),
    config: Sequence[dict[str, Any]] = (),
    namespace: str = "default",
    uid: str = "",
    driver: str = DRIVER,
    allocated: bool = True,
    reserved: bool = True,
) -> dict[str, Any]:
    """A ResourceClaim; allocated (unless `allocated` is False) with `devices` ({request:
    [device index]}) of `driver` in `pool`, then `results` as given, and `config`; reserved
    for a pod (as the kubelet sees it before it prepares) unless `reserved` is False."""
    entries = [
        result(request, d, pool, driver)
        for request, indices in (devices or {}).items()
        for d in indices
    ] + list(results)
    claim: dict[str, Any] = {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaim",
        "metadata": {"name": name, "namespace": namespace, "uid": uid or f"uid-{name}"},
        "spec": {"devices": {"requests": [{"name": r} for r in (devices or {})]}},
        "status": {},
    }
    if allocated:
        claim["status"]["allocation"] = {
            "devices": {"results": entries, "config": list(config)},
            "nodeSelector": {},
        }
        if reserved:
            claim["status"]["reservedFor"] = [
                {"resource": "pods", "name": f"pod-{name}", "uid": f"pod-uid-{name}"}
            ]
    return claim


# --- the kubelet -----------------------------------------------------------------------------
def target(path: str) -> str:
    return f"unix://{path}"


@dataclass(frozen=True)
class Registration:
    socket: str  # the registration socket's path
    info: reg_pb.PluginInfo


class FakeKubelet:
    """The kubelet's plugin watcher and DRA manager, as far as a DRA driver can tell."""

    def __init__(self, registry_dir: str, interval: float = 0.02) -> None:
        self.registry_dir = registry_dir
        self.interval = interval
        self.registrations: list[Registration] = []
        self.errors: list[str] = []
        self.refuse = ""  # when set, registrations are refused with this error
        # socket name -> identity when registered. A new socket often gets the inode of the one
        # it replaces: its creation time tells them apart (the kubelet sees create events).
        self._seen: dict[str, tuple[int, int, int]] = {}
        self._channels: list[grpc.Channel] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> FakeKubelet:
        os.makedirs(self.registry_dir, exist_ok=True)
        self._thread = threading.Thread(target=self._watch, name="fake-kubelet", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        with self._lock:
            channels, self._channels = self._channels, []
        for ch in channels:
            ch.close()

    def restart(self) -> None:
        """A new kubelet: it finds the registration sockets already there and registers each
        again (a starting kubelet also deletes its node's slices: FakeApi.delete_all_slices)."""
        self.stop()
        self._stop = threading.Event()
        self._seen.clear()
        self.start()

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                names = sorted(os.listdir(self.registry_dir))
            except OSError:
                continue
            present = {}
            for name in names:
                if not name.endswith("-reg.sock"):
                    continue
                try:
                    st = os.stat(os.path.join(self.registry_dir, name))
                except OSError:
                    continue
                present[name] = (st.st_dev, st.st_ino, st.st_ctime_ns)
            for name in set(self._seen) - set(present):
                del self._seen[name]  # the plugin went away: deregistered
            for name, identity in present.items():
                if self._seen.get(name) != identity and self._register(name):
                    self._seen[name] = identity

    def _register(self, name: str) -> bool:
        path = os.path.join(self.registry_dir, name)
        try:
            with grpc.insecure_channel(target(path)) as channel:
                stub = reg_grpc.RegistrationStub(channel)
                info = stub.GetInfo(reg_pb.InfoRequest(), timeout=2)
                ok = info.type == "DRAPlugin" and any(
                    v.removesuffix(".DRAPlugin") in DRA_VERSIONS for v in info.supported_versions
                )
                error = "" if ok else f"unsupported plugin {info.type} {info.supported_versions}"
                if self.refuse:
                    ok, error = False, self.refuse
                if ok:
                    # Registered before the plugin hears so, as in the kubelet.
                    with self._lock:
                        self.registrations.append(Registration(path, info))
                stub.NotifyRegistrationStatus(
                    reg_pb.RegistrationStatus(plugin_registered=ok, error=error), timeout=2
                )
        except grpc.RpcError as err:
            with self._lock:
                self.errors.append(f"{name}: {err}")
            return False  # tried again on the next round, like the kubelet
        return True

    def registered(self, driver: str = DRIVER) -> list[Registration]:
        with self._lock:
            return [r for r in self.registrations if r.info.name == driver]

    def stub(self, version: str = "v1", driver: str = DRIVER, endpoint: str = "") -> Any:
        """A DRAPlugin client of `endpoint`, by default the driver's latest registered one, in
        `version`."""
        endpoint = endpoint or self.registered(driver)[-1].info.endpoint
        channel = grpc.insecure_channel(target(endpoint))
        with self._lock:
            self._channels.append(channel)
        return DRA_VERSIONS[version][1].DRAPluginStub(channel)

    def health_service(self, driver: str = DRIVER) -> str:
        """The health service the 1.37 kubelet picks (pickHealthService): the newest of its own
        that the registration lists; "" when none, and then it never opens a stream."""
        listed = list(self.registered(driver)[-1].info.supported_versions)
        return next((s for s in HEALTH_SERVICES if s in listed), "")

    def watch_health(self, service: str, driver: str = DRIVER) -> HealthWatch:
        """A NodeWatchResources stream of `service` on the driver's latest registered
        endpoint, the DRA endpoint itself, as the kubelet dials it."""
        channel = grpc.insecure_channel(target(self.registered(driver)[-1].info.endpoint))
        with self._lock:
            self._channels.append(channel)
        pb, pb_grpc = HEALTH_SERVICES[service]
        return HealthWatch(pb_grpc.DRAResourceHealthStub(channel), pb)


class HealthWatch:
    """One health stream, read in a thread: every message received, then how it ended."""

    def __init__(self, stub: Any, pb: Any) -> None:
        self.pb = pb
        self.call = stub.NodeWatchResources(pb.NodeWatchResourcesRequest())
        self.messages: list[Any] = []
        self.ended: grpc.RpcError | None = None
        self.done = threading.Event()
        self._lock = threading.Lock()
        threading.Thread(target=self._read, name="health-watch", daemon=True).start()

    def _read(self) -> None:
        try:
            for message in self.call:
                with self._lock:
                    self.messages.append(message)
        except grpc.RpcError as err:
            self.ended = err
        self.done.set()

    def received(self) -> list[Any]:
        with self._lock:
            return list(self.messages)

    def latest(self) -> dict[str, tuple[str, str]]:
        """The last message, as {device name: (health name, message)}; {} before the first."""
        messages = self.received()
        if not messages:
            return {}
        return {
            d.device.device_name: (self.pb.HealthStatus.Name(d.health), d.message)
            for d in messages[-1].devices
        }

    def cancel(self) -> None:
        self.call.cancel()
        self.done.wait(5)


def claim_ref(claim: Mapping[str, Any], pb: Any = dra_v1_pb2) -> Any:
    meta = claim["metadata"]
    return pb.Claim(namespace=meta["namespace"], name=meta["name"], uid=meta["uid"])


def prepare(stub: Any, *claims: Mapping[str, Any], version: str = "v1") -> Any:
    """NodePrepareResources for `claims`, as the kubelet sends it for one pod."""
    pb = DRA_VERSIONS[version][0]
    return stub.NodePrepareResources(
        pb.NodePrepareResourcesRequest(claims=[claim_ref(c, pb) for c in claims]), timeout=20
    )


def unprepare(stub: Any, *claims: Mapping[str, Any], version: str = "v1") -> Any:
    pb = DRA_VERSIONS[version][0]
    return stub.NodeUnprepareResources(
        pb.NodeUnprepareResourcesRequest(claims=[claim_ref(c, pb) for c in claims]), timeout=20
    )


def answer(response: Any, claim: Mapping[str, Any]) -> list[tuple[str, str, str, list[str]]]:
    """One claim's devices in a NodePrepareResources response: (request, pool, device, CDI
    IDs); an AssertionError names the claim's error if it has one."""
    entry = response.claims[claim["metadata"]["uid"]]
    assert not entry.error, entry.error
    return [
        (",".join(d.request_names), d.pool_name, d.device_name, list(d.cdi_device_ids))
        for d in entry.devices
    ]


# --- the driver ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Dirs:
    registry: str  # the kubelet's plugins_registry
    plugins: str  # the kubelet's plugins directory
    cdi: str
    health: str  # the fake health file (absent: every device healthy)
    lnc: str  # the trn2 logical NeuronCore size file (absent: the default)

    @classmethod
    def under(cls, root: str) -> Dirs:
        return cls(
            registry=os.path.join(root, "registry"),
            plugins=os.path.join(root, "plugins"),
            cdi=os.path.join(root, "cdi"),
            health=os.path.join(root, "unhealthy"),
            lnc=os.path.join(root, "lnc"),
        )


def driver_config(dirs: Dirs, **overrides: Any) -> Config:
    """The driver on the test's directories, imitating its node's instance type label,
    polling fast."""
    values: dict[str, Any] = {
        "node_name": NODE,
        "registrar_dir": dirs.registry,
        "plugins_dir": dirs.plugins,
        "cdi_root": dirs.cdi,
        "health_port": -1,
        "fake_instance_type_label": INSTANCE_TYPE_LABEL,
        "fake_health_file": dirs.health,
        "lnc_config": dirs.lnc,
        "health_interval": 0.05,
        "socket_interval": 0.05,
        "resync_interval": 0.2,
        "wait_for_claim": 0.5,
        "pod_resources_socket": "",  # test_dra_device_manager_sweep.py sets one
    }
    values.update(overrides)
    return Config(**values)


def ready(driver: Driver) -> bool:
    """Registered with the kubelet, slices published, claims listed."""
    return (
        driver.sockets is not None
        and driver.sockets.state.registered.is_set()
        and driver.publisher is not None
        and driver.publisher.published.is_set()
        and driver.claims.synced
    )
