"""Restarting the extender and the plugin while pods run: no double allocation afterwards."""

from conftest import (
    NEURONCORE,
    NO_CONTIGUOUS_SET,
    Cluster,
    Pods,
    contiguous,
    needs_kind,
    restart_component,
    wait_for,
)

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
