"""Names and constants of the kubelet device plugin API v1beta1, and the generated stubs."""

from __future__ import annotations

import os
import re
import secrets

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
    "OWN_SOCKET",
    "SERVED",
    "SOCKETS",
    "UNHEALTHY",
    "VERSION",
    "pb",
    "pb_grpc",
    "pr_grpc",
    "pr_pb",
    "socket_name",
    "target",
]

VERSION = "v1beta1"
HEALTHY = "Healthy"
UNHEALTHY = "Unhealthy"
KUBELET_SOCKET = "kubelet.sock"
DEFAULT_DEVICE_PLUGIN_DIR = "/var/lib/kubelet/device-plugins"
DEFAULT_POD_RESOURCES_SOCKET = "/var/lib/kubelet/pod-resources/kubelet.sock"

# The resources this plugin serves, in registration order, and the stems of their socket file
# names: AWS's plugin's names without ".sock". Every start of a server adds a suffix of its own
# (neuron-devplugin-1a2b3c4d.sock), so that two plugins never share a path; why, in
# docs/architecture.md "Socket names".
SERVED = (Resource.NEURON, Resource.NEURONCORE)
SOCKETS = {
    Resource.NEURON: "neuron-devplugin",
    Resource.NEURONCORE: "neuroncore-devplugin",
}
# The names this plugin makes: stale ones (no one listening) may be removed at start.
OWN_SOCKET = re.compile(r"^(neuron|neuroncore)-devplugin-[0-9a-f]{8}\.sock$")


def socket_name(stem: str) -> str:
    """A fresh socket file name for one start of a server."""
    return f"{stem}-{secrets.token_hex(4)}.sock"


def target(path: str) -> str:
    """gRPC target of a unix socket: unix:// followed by an absolute path."""
    return f"unix://{os.path.abspath(path)}"
