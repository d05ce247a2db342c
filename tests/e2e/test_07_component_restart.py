"""Restarting the extender and the plugin while pods run: no double allocation afterwards."""

from conftest import NAMESPACE, NEURONCORE, Cluster, Pods, needs_kind, wait_for

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
    holders = [pods.create(f"hold-{i}", [{NEURONCORE: cores // 3}], node=node) for i in range(3)]
    for name in holders:
        pods.wait_running(name)
    held = {name: set(pods.cores(name)) for name in holders}

    _restart(cluster, "extender")
    _restart(cluster, "device-plugin")

    pods.create("late", [{NEURONCORE: 2}], node=node)
    pods.wait_unschedulable("late", "contiguous free")
    pods.delete(holders[1])
    pods.wait_running("late")
    late = set(pods.cores("late"))
    assert late <= held[holders[1]], f"late got {late}, freed were {held[holders[1]]}"
