"""Make the kubelet forget the device-plugin allocations of pods that are gone, so that a node
which ran a device plugin before DRA still starts the pods that ask for `aws.amazon.com/neuron`
through DRA (docs/dra.md, "A node that ran the device plugin").

The kubelet's device manager (pkg/kubelet/cm/devicemanager, 1.34 to 1.37) remembers the devices
each pod got from a device plugin, and drops the pods that are gone only when something asks it:
a device-plugin allocation, or a PodResources List. On a DRA node nothing does. Five minutes
after the device plugin left, the kubelet drops its endpoint while the remembered allocations
still name the resource; from then on it takes the resource for a device-plugin one when it
starts a container (GetDeviceRunContainerOptions does not skip resources served by DRA), and
every such container fails with CreateContainerConfigError "endpoint not found in cache for a
registered resource". One List clears it. So the driver lists at start, every `interval`, and
right after each NodePrepareResources, before the kubelet starts the claim's containers. The
answer is not used; the call is the point.
"""

from __future__ import annotations

import threading

from neuron_k8s.deviceplugin.podresources import PodResourcesClient
from neuron_k8s.logs import get_logger

log = get_logger("dra.devicemanagersweep")

INTERVAL = 30.0
UNAVAILABLE = (
    "pod resources api unavailable: on a node that ran a device plugin, pods asking for its "
    "resource through DRA may fail to start until it is back"
)


class DeviceManagerSweeper:
    """A thread that calls the kubelet's PodResources List at start, every `interval`, and
    soon after each `nudge()`. Unreachable is logged once per outage (PodResourcesClient)."""

    def __init__(self, socket_path: str, interval: float = INTERVAL) -> None:
        self._client = PodResourcesClient(socket_path, unavailable=UNAVAILABLE)
        self._interval = interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sweeps = 0  # Lists answered (tests)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="dm-sweep", daemon=True)
        self._thread.start()

    def nudge(self) -> None:
        """Ask for a List soon; never blocks (called from inside a kubelet gRPC call)."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._client.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                if self._client.list() is not None:
                    self.sweeps += 1
            except Exception as err:  # the thread must survive anything
                log.warning("pod resources list failed", error=str(err))
            self._wake.wait(self._interval)
