"""Restarting the extender and the plugin while pods run: no double allocation afterwards."""

from conftest import (
    NAMESPACE,
    NEURONCORE,
    NO_CONTIGUOUS_SET,
    Cluster,
    Pods,
    contiguous,
    needs_kind,
    wait_for,
)

INF2 = "inf2.48xlarge"


def _restart(cluster: Cluster, component: str) -> None:
    selector = f"app.kubernetes.io/component={component}"
    old = {
        p.metadata.uid
        for p in cluster.core.list_namespaced_pod(NAMESPACE, label_selector=selector).items
    }
    assert old, f"no {component} pods"
    cluster.core.delete_collection_namespaced_pod(NAMESPACE, label_selector=selector)

    def replaced() -> bool:
        now = cluster.core.list_namespaced_pod(NAMESPACE, label_selector=selector).items
        return bool(now) and all(
            p.metadata.uid not in old
            and p.status.phase == "Running"
            and all(c.ready for c in p.status.container_statuses or [])
            for p in now
        )

    wait_for(f"{component} pods replaced and ready", replaced, 120)


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

    _restart(cluster, "extender")
    _restart(cluster, "device-plugin")
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
