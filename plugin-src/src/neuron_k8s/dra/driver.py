"""The whole DRA driver, assembled from its parts: start() and stop() in-process, which is what
the console script and the in-process tests both use. docs/dra.md."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial

from neuron_k8s import __version__
from neuron_k8s.deviceplugin.api import DEFAULT_POD_RESOURCES_SOCKET
from neuron_k8s.deviceplugin.discovery import Discovery, DiscoveryError, Inventory
from neuron_k8s.deviceplugin.discovery_fake import FakeDiscovery
from neuron_k8s.deviceplugin.discovery_real import RealDiscovery, read_lnc
from neuron_k8s.deviceplugin.health import HealthMonitor
from neuron_k8s.deviceplugin.http import StatusServer
from neuron_k8s.deviceplugin.node import node_label, read_node
from neuron_k8s.hardwareerrors import BOOT_ID, DEFAULT_STATE, HardwareErrors
from neuron_k8s.kube import KubeClient
from neuron_k8s.logs import get_logger
from neuron_k8s.nodecondition import NodeConditionWriter, event_poster
from neuron_k8s.nodeevents import (
    DRIVER_NOT_FOUND,
    driver_not_found_message,
    node_warning,
    post_in_background,
)
from neuron_k8s.pods import INSTANCE_TYPE_LABEL

from .apifeatures import COMPONENT
from .cdi import CdiSpecs
from .checkpoint import Checkpoint
from .claimcache import ClaimCache
from .devicemanagersweep import DeviceManagerSweeper
from .devices import DEFAULT_DRIVER, Versions
from .health import HEARTBEAT, HealthReporter, prepared_devices
from .metrics import Metrics
from .offers import offers
from .partitions import CORE_SET_CHOICES, DEFAULT_CORE_SETS
from .podclaims import NodePods, node_allocations
from .prepare import Preparer
from .publisher import SlicePublisher
from .service import DraService
from .sockets import Sockets
from .taints import DEFAULT_EFFECT, EFFECTS

log = get_logger("dra")


class ConfigError(ValueError):
    """The flags contradict each other or are out of range."""


@dataclass
class Config:
    node_name: str = ""
    driver_name: str = DEFAULT_DRIVER
    kubeconfig: str | None = None
    registrar_dir: str = "/var/lib/kubelet/plugins_registry"
    plugins_dir: str = "/var/lib/kubelet/plugins"
    cdi_root: str = "/var/run/cdi"
    health_port: int = 51515  # negative: no HTTP server (tests)
    pod_uid: str = ""
    log_level: str = "info"
    fake_instance_type: str | None = None
    fake_instance_type_label: str | None = None
    fake_health_file: str | None = None
    core_partitions: bool = False
    core_set_sizes: str = DEFAULT_CORE_SETS  # partitions.CORE_SET_CHOICES
    unhealthy_taint_effect: str = DEFAULT_EFFECT  # taints.EFFECTS
    sysfs_root: str = "/sys"
    dev_root: str = "/dev"
    lnc_config: str = "/opt/aws/neuron/logical_nc_config"
    kernel_messages: str = ""  # empty: hardware errors are not read
    hardware_error_state: str = DEFAULT_STATE
    pod_resources_socket: str = DEFAULT_POD_RESOURCES_SOCKET  # empty: no sweeps
    # Not flags: the boot id's file, polling periods and waits (tests change them).
    boot_id_file: str = BOOT_ID
    health_interval: float = 1.0
    socket_interval: float = 1.0
    resync_interval: float = 30.0
    wait_for_claim: float = 10.0
    health_heartbeat: float = HEARTBEAT  # the kubelet's health streams, resent this often

    def validate(self) -> None:
        if not self.node_name:
            raise ConfigError("the node name is required (--node-name or NODE_NAME)")
        if self.fake_instance_type and self.fake_instance_type_label:
            raise ConfigError(
                "choose one fake shape, not --fake-instance-type and --fake-instance-type-label"
            )
        if not self.driver_name or "/" in self.driver_name:
            raise ConfigError(f"--driver-name must be a DNS subdomain, got {self.driver_name!r}")
        if self.health_port > 65535:
            raise ConfigError("--health-port must be a port number")
        if self.core_set_sizes not in CORE_SET_CHOICES:
            known = ", ".join(sorted(CORE_SET_CHOICES))
            raise ConfigError(
                f"--core-set-sizes must be one of {known}, got {self.core_set_sizes!r}"
            )
        if self.unhealthy_taint_effect not in EFFECTS:
            raise ConfigError(
                f"--unhealthy-taint-effect must be one of {', '.join(EFFECTS)}, "
                f"got {self.unhealthy_taint_effect!r}"
            )

    @property
    def state_dir(self) -> str:
        return os.path.join(self.plugins_dir, self.driver_name)


def _kernel_driver(sysfs_root: str) -> str:
    """The Neuron kernel driver's version (neuronDriverVersion), as the module reports it."""
    try:
        with open(os.path.join(sysfs_root, "module", "neuron", "version")) as f:
            return f.read().strip() or "unknown"
    except OSError:
        return "unknown"


class Driver:
    def __init__(self, config: Config, client: KubeClient | None = None) -> None:
        config.validate()
        self.config = config
        self.client = client
        self.metrics = Metrics()
        self.claims = ClaimCache()
        self.pods = NodePods()  # the containers of prepared claims, for the metrics
        self.inventory: Inventory | None = None
        self.publisher: SlicePublisher | None = None
        self.sockets: Sockets | None = None
        self.http: StatusServer | None = None
        self._health: HealthMonitor | None = None
        self.health_service: HealthReporter | None = None
        self._condition: NodeConditionWriter | None = None
        self.sweeper: DeviceManagerSweeper | None = None
        self.driver_warned = False  # the NeuronDriverNotFound Event was posted

    def _discovery(self, node: dict[str, object], lnc: int) -> Discovery:
        c = self.config
        if c.fake_instance_type:
            return FakeDiscovery.for_instance_type(c.fake_instance_type, lnc)
        if c.fake_instance_type_label:
            value = node_label(node, c.fake_instance_type_label)
            if not value:
                raise DiscoveryError(
                    f"node {c.node_name} has no label {c.fake_instance_type_label} to imitate"
                )
            return FakeDiscovery.for_instance_type(value, lnc)
        return RealDiscovery(c.dev_root, c.sysfs_root, lnc, node_label(node, INSTANCE_TYPE_LABEL))

    def start(self) -> None:
        c = self.config
        client = self.client = self.client or KubeClient.from_config(c.kubeconfig)
        if client is None:
            raise DiscoveryError(
                "the DRA driver needs the Kubernetes API (in-cluster or --kubeconfig): it "
                "publishes ResourceSlices and reads ResourceClaims"
            )
        node = read_node(client, c.node_name)
        lnc = read_lnc(c.lnc_config)
        discovery = self._discovery(node, lnc)
        inventory = self.inventory = discovery.discover()
        shape = inventory.shape
        versions = Versions(__version__, "fake" if inventory.fake else _kernel_driver(c.sysfs_root))
        log.info(
            "starting",
            driver=c.driver_name,
            mode="fake" if inventory.fake else "real",
            shape=shape.name,
            devices=shape.devices,
            cores_per_device=shape.cores_per_device,
            core_partitions=c.core_partitions,
        )
        uid = str((node.get("metadata") or {}).get("uid") or "") or None
        cdi = CdiSpecs(c.cdi_root, c.driver_name)
        checkpoint = Checkpoint.of_instance(c.state_dir, c.pod_uid)
        # Before serving: a predecessor's claims, unprepared since only where their spec is gone.
        checkpoint.adopt(lambda uid: os.path.exists(cdi.path(uid)))
        hardware = None
        if c.kernel_messages:
            # docs/architecture.md, "Hardware errors"
            hardware = HardwareErrors(
                c.kernel_messages,
                shape.devices,
                c.hardware_error_state,
                c.boot_id_file,
                event_poster(client, c.node_name, uid or c.node_name, COMPONENT),
            )
            self._condition = NodeConditionWriter(client, c.node_name)
        # The kubelet's view of health (pod status): Unknown, not Healthy, where nothing on
        # this node tells (fake mode without a health file or kernel messages).
        tracked = (
            bool(c.fake_health_file)
            or hardware is not None
            or discovery.present(inventory) is not None
        )
        reporter = self.health_service = HealthReporter(
            shape, c.node_name, prepared_devices(checkpoint), c.health_heartbeat
        )
        publisher = self.publisher = SlicePublisher(
            client, c.driver_name, c.node_name, uid, c.resync_interval
        )

        def on_health(unhealthy: frozenset[int]) -> None:
            reporter.update(unhealthy if tracked else None)
            if self._condition is not None and self._health is not None:
                self._condition.set(self._health.hardware_errors)
            if self._health is not None and self._health.driver_found is False:
                # No Neuron driver on the node: one empty slice, the node offers nothing.
                self.metrics.devices.labels("unhealthy").set(0)
                self.metrics.devices.labels("healthy").set(0)
                publisher.publish([{"devices": []}])
                if not self.driver_warned:
                    self.driver_warned = True
                    message = driver_not_found_message(c.dev_root, c.sysfs_root)
                    event = node_warning(
                        c.node_name, uid or c.node_name, DRIVER_NOT_FOUND, message, COMPONENT
                    )
                    post_in_background(client, event)
                return
            self.metrics.devices.labels("unhealthy").set(len(unhealthy))
            self.metrics.devices.labels("healthy").set(shape.devices - len(unhealthy))
            sizes = c.core_set_sizes if c.core_partitions else None
            effect = c.unhealthy_taint_effect
            publisher.publish(*offers(shape, c.node_name, versions, unhealthy, sizes, effect))

        self._health = HealthMonitor(
            inventory, discovery, on_health, c.fake_health_file, c.health_interval, hardware
        )
        preparer = Preparer(
            c.driver_name,
            c.node_name,
            inventory,
            self.claims,
            cdi,
            checkpoint,
            c.wait_for_claim,
        )
        self.claims.start(client)
        self.pods.start(client, c.node_name)
        self.metrics.track_allocations(
            partial(
                node_allocations,
                c.node_name,
                shape,
                checkpoint,
                self.claims,
                self.pods.pods,
                lambda: self._health.unhealthy if self._health else frozenset(),
            )
        )
        # Every device healthy first: the monitor reports only changes, and its first check
        # (in start) reports the devices already unhealthy.
        on_health(frozenset())
        self._health.start()
        if self._condition is not None:
            self._condition.start()  # after the first check: the Node never flaps at start
        publisher.start()
        if c.pod_resources_socket:
            self.sweeper = DeviceManagerSweeper(c.pod_resources_socket)
            self.sweeper.start()
        self.sockets = Sockets(
            DraService(
                preparer, self.metrics, reporter, self.sweeper.nudge if self.sweeper else None
            ),
            c.driver_name,
            c.plugins_dir,
            c.registrar_dir,
            c.pod_uid,
            self.metrics,
            c.socket_interval,
        )
        self.sockets.start()
        if c.health_port >= 0:
            self.http = StatusServer(c.health_port, self.metrics, self._live, self._ready)
            self.http.start()

    def _live(self) -> tuple[bool, str]:
        return (True, "ok") if self.sockets is not None else (False, "starting")

    def _ready(self) -> tuple[bool, str]:
        if self.sockets is None or not self.sockets.state.registered.is_set():
            return False, "not registered with the kubelet"
        if self.publisher is None or not self.publisher.published.is_set():
            return False, "ResourceSlices not published yet"
        if not self.claims.synced:
            return False, "ResourceClaims not listed yet"
        return True, "registered, slices published"

    def stop(self) -> None:
        sockets, publisher = self.sockets, self.publisher
        last = sockets is not None and not sockets.others_registered()
        if self.health_service is not None:
            self.health_service.close()  # ends the kubelet's streams before their server goes
        if sockets is not None:
            sockets.stop()
        parts = (self._health, self.claims, self.pods, publisher, self.http, self._condition)
        for part in (*parts, self.sweeper):
            if part is not None:
                part.stop()
        # The last driver of the node takes its slices with it (an uninstall leaves nothing);
        # during a rolling update the other instance keeps publishing them.
        if last and publisher is not None:
            try:
                publisher.remove_all()
            except Exception as err:
                log.warning("removing the slices failed", error=str(err))
        log.info("stopped")
