"""Restarting the extender and the plugin while pods run: no double allocation afterwards; a
surge roll of the plugin, old and new on a node at once, leaves every node registered."""

import uuid
from pathlib import Path

import yaml
from conftest import (
    NAMESPACE,
    NEURONCORE,
    NO_CONTIGUOUS_SET,
    RELEASE,
    Cluster,
    Pods,
    contiguous,
    needs_kind,
    plugin_sockets,
    restart_component,
    wait_for,
)

CHART = str(Path(__file__).resolve().parents[2] / "charts" / "neuron")

INF2 = "inf2.48xlarge"


def test_restarted_extender_and_plugin_rebuild_usage_from_the_pods(
    cluster: Cluster, pods: Pods
) -> None:
    needs_kind()
    node = cluster.node_of_type(INF2)
    _, cores = cluster.allocatable(node)
    # Fill the node with two-core pods, then free every other pair: half the cores are free,
    # but no four of them are contiguous. Only the extender's view of the pods knows that.
    names = [pods.create(f"pair-{i:02d}", [{NEURONCORE: 2}], node=node) for i in range(cores // 2)]
    for name in names:
        pods.wait_running(name)
        pods.wait_recorded(name)
    by_start = sorted(names, key=lambda n: pods.cores(n)[0])
    freed, kept = by_start[1::2], by_start[0::2]
    pods.delete(*freed)
    held = {name: set(pods.cores(name)) for name in kept}

    restart_component(cluster, "extender")
    restart_component(cluster, "device-plugin")
    # The new plugin has registered when the kubelet offers every core again (the pairs use
    # cores of the same resource, which the kubelet counts itself).
    wait_for("the plugin registered again", lambda: cluster.allocatable(node)[1] == cores, 90)

    pods.create("late", [{NEURONCORE: 4}], node=node)
    pods.wait_unschedulable("late", NO_CONTIGUOUS_SET)

    # Free one more pair between two free ones: now there is room, and only there.
    middle = kept[len(kept) // 2]
    pods.delete(middle)
    pods.wait_running("late")
    late = pods.cores("late")
    assert len(late) == 4 and contiguous(late), late
    still_held = set().union(*(cores for name, cores in held.items() if name != middle))
    assert not set(late) & still_held, f"late got {late}, still held: {sorted(still_held)}"
    assert set(late) & held[middle], "late should use the pair freed last"


def test_a_surge_roll_of_the_plugin_leaves_every_node_registered(
    cluster: Cluster, pods: Pods, node_host, tmp_path: Path
) -> None:
    # maxSurge starts the new plugin beside the old one on each node, and the old one stops only
    # once the new one is ready (registered). A 1.37 kubelet refuses a path it still holds and
    # then never frees it, so two plugins sharing a socket name would stall this roll for good
    # (docs/architecture.md, "Socket names").
    needs_kind()
    nodes = list(cluster.neuron_nodes())
    before = {n: cluster.allocatable(n) for n in nodes}
    saved = tmp_path / "values.yaml"
    saved.write_text(cluster.helm("get", "values", RELEASE, "-n", NAMESPACE, "-o", "yaml").stdout)
    surge = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    values = yaml.safe_load(saved.read_text()) or {}
    values.setdefault("devicePlugin", {})["updateStrategy"] = surge
    annotations = values["devicePlugin"].setdefault("podAnnotations", {})
    annotations["e2e/roll"] = uuid.uuid4().hex[:8]
    rolled = tmp_path / "surge.yaml"
    rolled.write_text(yaml.safe_dump(values))
    try:
        cluster.helm("upgrade", RELEASE, CHART, "-n", NAMESPACE, "-f", str(rolled),
                     "--wait", "--timeout", "4m")  # fmt: skip
        for node in nodes:
            wait_for(f"{node} offers all again", lambda n=node: cluster.allocatable(n) == before[n])
            sockets = plugin_sockets(node_host(node))
            assert all(len(names) == 1 for names in sockets.values()), (node, sockets)
            name = pods.create(f"after-roll-{node[-1]}", [{NEURONCORE: 2}], node=node)
            pods.wait_running(name)
            assert contiguous(pods.cores(name)), pods.cores(name)
    finally:
        cluster.helm("upgrade", RELEASE, CHART, "-n", NAMESPACE, "-f", str(saved),
                     "--wait", "--timeout", "4m")  # fmt: skip
