"""The whole device plugin, assembled from its parts: start() and stop() in-process, which is
what the console script and the in-process tests both use."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from functools import partial

from neuron_k8s.hardwareerrors import BOOT_ID, DEFAULT_STATE, HardwareErrors
from neuron_k8s.kube import ApiError, KubeClient
from neuron_k8s.logs import get_logger
from neuron_k8s.nodecondition import NodeConditionWriter, event_poster
from neuron_k8s.nodeevents import (
    DRIVER_NOT_FOUND,
    driver_not_found_message,
    node_warning,
    post_in_background,
)
from neuron_k8s.pods import INSTANCE_TYPE_LABEL

from .allocation import AllocationService
from .api import DEFAULT_DEVICE_PLUGIN_DIR, DEFAULT_POD_RESOURCES_SOCKET, SERVED, SOCKETS
from .discovery import Discovery, DiscoveryError
from .discovery_fake import FakeDiscovery
from .discovery_real import RealDiscovery, read_lnc
from .health import HealthMonitor
from .http import StatusServer
from .metrics import Metrics
from .node import NodeAnnotator, read_node_label
from .podresources import PodResourcesClient
from .podview import NodePod, PodView
from .reconcile import Reconciler
from .registration import PluginManager
from .server import DevicePluginServicer, ResourceServer
from .state import PluginState

log = get_logger("deviceplugin")

COMPONENT = "neuron-device-plugin"  # of the Events it posts


class ConfigError(ValueError):
    """The flags contradict each other or are out of range."""


@dataclass
class Config:
    device_plugin_dir: str = DEFAULT_DEVICE_PLUGIN_DIR
    kubeconfig: str | None = None
    node_name: str | None = None
    http_port: int = 8080  # negative: no HTTP server (tests)
    log_level: str = "info"
    fake_instance_type: str | None = None
    fake_devices: int | None = None
    fake_cores_per_device: int | None = None
    fake_instance_type_label: str | None = None
    fake_health_file: str | None = None
    sysfs_root: str = "/sys"
    dev_root: str = "/dev"
    lnc_config: str = "/opt/aws/neuron/logical_nc_config"
    pod_resources_socket: str = DEFAULT_POD_RESOURCES_SOCKET
    withhold_in_use: bool = True
    kernel_messages: str = ""  # empty: hardware errors are not read
    hardware_error_state: str = DEFAULT_STATE
    # Not flags: the boot id's file, how often things are polled (tests change them).
    boot_id_file: str = BOOT_ID
    health_interval: float = 1.0
    registration_interval: float = 0.5
    pod_resources_interval: float = 5.0
    # After an Allocate or a change of a pod, reconcile this soon (the kubelet lists a
    # container once its Allocate has returned), so that pods are recorded within a second.
    pod_resources_soon: float = 0.5
    # How long GetPreferredAllocation waits for the watch to show a pod the kubelet admits.
    wait_for_pod: float = 2.0

    @property
    def fake(self) -> bool:
        return bool(self.fake_instance_type or self.fake_devices or self.fake_instance_type_label)

    def validate(self) -> None:
        chosen = [
            name
            for name, given in (
                ("--fake-instance-type", self.fake_instance_type),
                ("--fake-devices", self.fake_devices is not None),
                ("--fake-instance-type-label", self.fake_instance_type_label),
            )
            if given
        ]
        if len(chosen) > 1:
            raise ConfigError(f"choose one fake shape, not {' and '.join(chosen)}")
        if (self.fake_devices is None) != (self.fake_cores_per_device is None):
            raise ConfigError("--fake-devices and --fake-cores-per-device go together")
        if self.fake_devices is not None and self.fake_devices < 1:
            raise ConfigError("--fake-devices must be at least 1")
        if self.fake_cores_per_device is not None and self.fake_cores_per_device < 1:
            raise ConfigError("--fake-cores-per-device must be at least 1")
        if self.http_port > 65535:
            raise ConfigError("--http-port must be a port number")
        if not self.device_plugin_dir:
            raise ConfigError("--device-plugin-dir must not be empty")


class Plugin:
    def __init__(self, config: Config) -> None:
        config.validate()
        self.config = config
        self.client: KubeClient | None = None
        self.metrics = Metrics()
        self.state: PluginState | None = None
        self.manager: PluginManager | None = None
        self.http: StatusServer | None = None
        self.pods: PodView | None = None
        self.reconciler: Reconciler | None = None
        self._health: HealthMonitor | None = None
        self._annotator: NodeAnnotator | None = None
        self._condition: NodeConditionWriter | None = None
        self._podresources: PodResourcesClient | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._poller: threading.Thread | None = None
        self.driver_warned = False  # the NeuronDriverNotFound Event was posted

    # --- assembly ------------------------------------------------------------------------
    def _discovery(self, lnc: int) -> Discovery:
        c, client, node = self.config, self.client, self.config.node_name
        if c.fake_instance_type:
            return FakeDiscovery.for_instance_type(c.fake_instance_type, lnc)
        if c.fake_devices is not None and c.fake_cores_per_device is not None:
            return FakeDiscovery.for_counts(c.fake_devices, c.fake_cores_per_device)
        if c.fake_instance_type_label:
            if client is None or not node:
                raise DiscoveryError(
                    "--fake-instance-type-label needs the Kubernetes API and the node name "
                    "(--node-name or NODE_NAME)"
                )
            value = read_node_label(client, node, c.fake_instance_type_label)
            if not value:
                raise DiscoveryError(
                    f"node {node} has no label {c.fake_instance_type_label} to imitate"
                )
            log.info("imitating the node's label", label=c.fake_instance_type_label, value=value)
            return FakeDiscovery.for_instance_type(value, lnc)
        instance_type = None
        if client is not None and node:
            try:
                instance_type = read_node_label(client, node, INSTANCE_TYPE_LABEL, timeout=10)
            except ApiError as err:
                log.warning("could not read the node's instance type", error=str(err))
        return RealDiscovery(c.dev_root, c.sysfs_root, lnc, instance_type)

    def start(self) -> None:
        c = self.config
        self.client = KubeClient.from_config(c.kubeconfig)
        if self.client is None:
            log.info(
                "standalone: no Kubernetes API configured (no in-cluster config, no "
                "--kubeconfig); allocating the kubelet's device IDs only"
            )
        elif not c.node_name:
            log.warning(
                "no node name (--node-name or NODE_NAME): extender plans, pod records and the "
                "unhealthy-devices node annotation are off"
            )
        lnc = read_lnc(c.lnc_config)
        discovery = self._discovery(lnc)
        inventory = discovery.discover()
        self.inventory = inventory
        shape = inventory.shape
        api = self.client is not None and bool(c.node_name)
        self.metrics.info.labels(
            "fake" if inventory.fake else "real", shape.name, "api" if api else "standalone"
        ).set(1)
        log.info(
            "starting",
            mode="fake" if inventory.fake else "real",
            shape=shape.name,
            devices=shape.devices,
            cores_per_device=shape.cores_per_device,
            rule=shape.rule.value,
            api="api" if api else "standalone",
            withhold_in_use=c.withhold_in_use,
            device_plugin_dir=c.device_plugin_dir,
        )
        state = self.state = PluginState(inventory, self.metrics, c.withhold_in_use)
        self.metrics.track_allocations(partial(state.allocations, c.node_name or ""))
        if c.pod_resources_socket:
            self._podresources = PodResourcesClient(c.pod_resources_socket)
        if api and self.client is not None and c.node_name:
            self.pods = PodView(self.client, c.node_name, shape, self.metrics, self._pod_changed)
            self.reconciler = Reconciler(state, self.pods, self._podresources, self.metrics)
            self._annotator = NodeAnnotator(self.client, c.node_name, self.metrics)
        hardware = None
        if c.kernel_messages:
            # docs/architecture.md, "Hardware errors"
            poster = event_poster(self.client if api else None, c.node_name, c.node_name, COMPONENT)
            hardware = HardwareErrors(
                c.kernel_messages, shape.devices, c.hardware_error_state, c.boot_id_file, poster
            )
            if api and self.client is not None and c.node_name:
                self._condition = NodeConditionWriter(self.client, c.node_name)
        allocation = AllocationService(
            state, self.metrics, self.pods, self._podresources, self._soon, c.wait_for_pod
        )

        def on_health(unhealthy: frozenset[int]) -> None:
            # From the health monitor, never inside a kubelet gRPC call.
            missing = self._health is not None and self._health.driver_found is False
            state.set_unhealthy(unhealthy, advertised=not missing)
            if self._annotator is not None:
                self._annotator.set(unhealthy)
            if self._condition is not None and self._health is not None:
                self._condition.set(self._health.hardware_errors)
            if missing and not self.driver_warned and self.client is not None and c.node_name:
                self.driver_warned = True
                message = driver_not_found_message(c.dev_root, c.sysfs_root)
                event = node_warning(c.node_name, c.node_name, DRIVER_NOT_FOUND, message, COMPONENT)
                post_in_background(self.client, event)

        self._health = HealthMonitor(
            inventory, discovery, on_health, c.fake_health_file, c.health_interval, hardware
        )
        servers = [
            ResourceServer(
                DevicePluginServicer(r, state, allocation, self.metrics),
                c.device_plugin_dir,
                SOCKETS[r],
            )
            for r in SERVED
        ]
        self.manager = PluginManager(
            servers, c.device_plugin_dir, self.metrics, c.registration_interval
        )
        if self.pods is not None:
            self.pods.start()
        self._health.start()
        if self._annotator is not None:
            self._annotator.set(self._health.unhealthy)
            self._annotator.start()
        if self._condition is not None:
            self._condition.set(self._health.hardware_errors)
            self._condition.start()
        self._poller = threading.Thread(target=self._poll, name="reconcile", daemon=True)
        self._poller.start()
        if c.http_port >= 0:
            self.http = StatusServer(c.http_port, self.metrics, self._live, self._ready)
            self.http.start()
        self.manager.start()

    def _soon(self) -> None:
        self._wake.set()

    def _pod_changed(self, old: NodePod | None, new: NodePod | None) -> None:
        """A pod on the node changed (watch thread). A pod gone from the API, or shown
        Succeeded or Failed, has had its containers stopped by the kubelet: what it held is
        free at once. Its record stands in for PodResources until a List succeeds."""
        state = self.state
        if state is not None:
            with state.lock:
                ledger = state.ledger
                if new is None and old is not None:
                    ledger.forget_pod(old.namespace, old.name, old.uid)
                elif new is not None:
                    if not new.holds and (old is None or old.holds):
                        ledger.finish_pod(new.namespace, new.name, new.uid)
                    ledger.note_record(new.namespace, new.name, new.kept())
                state.refresh()
        self._wake.set()

    def poll_once(self) -> None:
        """One round: the kubelet's PodResources into the ledger, then the pods' records."""
        state = self.state
        if state is None:
            return
        if self.reconciler is not None:
            self.reconciler.run_once()
        elif self._podresources is not None:
            snapshot = self._podresources.list()
            with state.lock:
                if snapshot is not None:
                    state.ledger.take(snapshot)
                state.refresh()
        self.metrics.polls.inc()

    def _poll(self) -> None:
        c = self.config
        due = time.monotonic()
        while not self._stop.is_set():
            if self._wake.wait(max(due - time.monotonic(), 0)):
                self._wake.clear()
                due = min(due, time.monotonic() + c.pod_resources_soon)
                continue
            if self._stop.is_set():
                return
            try:
                self.poll_once()
            except Exception as err:
                self.metrics.errors.labels("pod_resources").inc()
                log.error("reconcile round failed", error=str(err), exc_info=True)
            due = time.monotonic() + c.pod_resources_interval

    def _live(self) -> tuple[bool, str]:
        if self.manager is None or not all(s.serving() for s in self.manager.servers):
            return False, "not serving"
        return True, "ok"

    def _ready(self) -> tuple[bool, str]:
        if self.manager is None:
            return False, "starting"
        missing = [r for r, ok in self.manager.registered.items() if not ok]
        if missing:
            return False, f"not registered with the kubelet: {', '.join(missing)}"
        if not self._holdings_known():
            return False, (
                "what the kubelet holds is unknown: no PodResources List has succeeded and the "
                "pod watch has not listed the node's pods"
            )
        return True, "registered"

    def _holdings_known(self) -> bool:
        """Whether a PodResources List has succeeded or the pods' records are known (docs/
        architecture.md, "The kubelet's IDs are the truth"). With neither configured there is
        nothing to wait for: the plugin knows only its own answers."""
        if self._podresources is None and self.pods is None:
            return True
        state = self.state
        if state is not None:
            with state.lock:
                if state.ledger.listed is not None:
                    return True
        return self.pods is not None and self.pods.synced

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self.state is not None:
            self.state.stop()  # ends ListAndWatch streams promptly
        if self.manager is not None:
            self.manager.stop()  # stops the servers and removes their sockets
        if self.http is not None:
            self.http.stop()
        for part in (self._health, self.pods, self._annotator, self._condition):
            if part is not None:
                part.stop()
        if self._podresources is not None:
            self._podresources.close()
        log.info("stopped")
