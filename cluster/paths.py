"""Which way up the harness takes, step by step: what the machine already has, else what this
project builds without a registry.

- Docker: when `docker info` answers, the machine's engine is used as it is; otherwise
  setup-host.sh unpacks and starts one (offline path).
- Node image: the pinned stock kind node image (versions.env KIND_NODE_IMAGE, the Kubernetes
  version of the offline build) when it is present or can be pulled, with kind's own CNI;
  otherwise cluster/ builds binaries and a node image from the Go module proxy and Debian, and
  wires a bridge network (network.py).
- neuron-k8s image: `docker build plugin-src` on the stock path; the registry-free image builder
  on the offline path (which has no base image to build from).

NEURON_E2E_OFFLINE=1 takes the offline path whatever the machine has.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Way:
    stock: bool  # kind's node image and CNI, docker build; else the offline build
    docker_answers: bool  # the machine's engine answered before setup-host.sh ran

    def describe(self, node_image: str) -> str:
        if self.stock:
            return (
                f"stock kind: this machine's Docker, node image {node_image}, kind's CNI, "
                "neuron-k8s by docker build"
            )
        docker = "this machine's Docker" if self.docker_answers else "Docker from setup-host.sh"
        return f"offline build: {docker}, node image and images built here, bridge CNI"


@dataclass(frozen=True)
class Probes:
    """What the choice asks of the machine; each returns whether it worked."""

    docker_answers: Callable[[], bool]
    image_present: Callable[[str], bool]
    image_pulled: Callable[[str], bool]


def choose(probes: Probes, node_image: str, offline: bool) -> Way:
    docker = probes.docker_answers()
    if offline or not docker:
        # Without an engine, the offline path starts one; a pull through it would still need
        # a registry, which this project does not count on.
        return Way(stock=False, docker_answers=docker)
    stock = probes.image_present(node_image) or probes.image_pulled(node_image)
    return Way(stock=stock, docker_answers=docker)
