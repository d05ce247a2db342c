"""Real nodes imitated on kind: the Neuron driver's footprint on a node (cluster/neurondriver.py)
and what the components say about a node (its conditions, its Events)."""

from __future__ import annotations

import os
import sys

from conftest import Cluster, needs_kind
from kubernetes import client

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "cluster"))
# cluster/ is a folder of scripts, not a package.
import neurondriver


class NeuronDriver:
    """The Neuron driver's imitated footprint on one kind node (cluster/neurondriver.py): take
    a device node away and give it back, print a hardware-error kernel message, or take the
    whole footprint away; `reset` gives the node a fresh boot's footprint again."""

    def __init__(self, node: str) -> None:
        needs_kind()
        self.node = node

    def remove(self, device: int) -> None:
        neurondriver.exec_on(self.node, neurondriver.remove_script(device))

    def restore(self, device: int) -> None:
        neurondriver.exec_on(self.node, neurondriver.restore_script(device))

    def hardware_error(self, device: int, kind: str = "SRAM_UNCORRECTABLE_ERROR") -> None:
        neurondriver.exec_on(self.node, neurondriver.error_script(device, kind))

    def clear_messages(self) -> None:
        neurondriver.exec_on(self.node, neurondriver.clear_messages_script())

    def forget_errors(self) -> None:
        """What docs/real-mode.md tells an operator to do after a repair."""
        neurondriver.exec_on(self.node, f"rm -f {neurondriver.STATE_FILE}\n")

    def unplant(self) -> None:
        neurondriver.exec_on(self.node, neurondriver.unplant_script())

    def reset(self) -> None:
        neurondriver.plant([self.node], os.environ.get("KUBECONFIG"))


def node_event_reasons(cluster: Cluster, node: str, since: float) -> list[str]:
    """The reasons of the Warning Events about a Node seen since `since` (time.time())."""
    found = cluster.core.list_event_for_all_namespaces(
        field_selector=f"involvedObject.kind=Node,involvedObject.name={node},type=Warning"
    ).items
    out = []
    for e in found:
        when = e.last_timestamp or e.event_time or e.metadata.creation_timestamp
        if when is not None and when.timestamp() >= since - 1:
            out.append(e.reason)
    return out


def node_condition(
    cluster: Cluster, node: str, kind: str, status: str | None = None
) -> client.V1NodeCondition | None:
    """The Node's condition of type `kind` (only if its status is `status`, where given)."""
    conditions = cluster.core.read_node(node).status.conditions or []
    found = next((c for c in conditions if c.type == kind), None)
    return found if found is not None and status in (None, found.status) else None
