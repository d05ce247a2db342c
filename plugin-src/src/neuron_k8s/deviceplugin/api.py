"""Names and constants of the kubelet device plugin API v1beta1, and the generated stubs."""

from __future__ import annotations

import os

from neuron_k8s._proto import deviceplugin_v1beta1_pb2 as pb
from neuron_k8s._proto import deviceplugin_v1beta1_pb2_grpc as pb_grpc
from neuron_k8s._proto import podresources_v1_pb2 as pr_pb
from neuron_k8s._proto import podresources_v1_pb2_grpc as pr_grpc
from neuron_k8s.allocator import Resource

__all__ = [
    "DEFAULT_DEVICE_PLUGIN_DIR",
    "DEFAULT_POD_RESOURCES_SOCKET",
    "HEALTHY",
    "KUBELET_SOCKET",
    "SERVED",
    "SOCKETS",
    "UNHEALTHY",
    "VERSION",
    "pb",
    "pb_grpc",
    "pr_grpc",
    "pr_pb",
    "target",
]

VERSION = "v1beta1"
HEALTHY = "Healthy"
UNHEALTHY = "Unhealthy"
KUBELET_SOCKET = "kubelet.sock"
DEFAULT_DEVICE_PLUGIN_DIR = "/var/lib/kubelet/device-plugins"
DEFAULT_POD_RESOURCES_SOCKET = "/var/lib/kubelet/pod-resources/kubelet.sock"

# The resources this plugin serves, in registration order, and their socket file names (the
# names AWS's plugin uses, so that node tooling that looks for them keeps working).
SERVED = (Resource.NEURON, Resource.NEURONCORE)
SOCKETS = {
    Resource.NEURON: "neuron-devplugin.sock",
    Resource.NEURONCORE: "neuroncore-devplugin.sock",
}


def target(path: str) -> str:
    """gRPC target of a unix socket: unix:// followed by an absolute path."""
    return f"unix://{os.path.abspath(path)}"
