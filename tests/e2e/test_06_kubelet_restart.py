"""Restarting the kubelet: the plugin registers again and running pods keep their cores."""

from conftest import (
    NEURON,
    NEURONCORE,
    Cluster,
    Pods,
    plugin_sockets,
    wait_for,
)


def test_plugin_registers_again_after_a_kubelet_restart_and_pods_keep_cores(
    cluster: Cluster, pods: Pods, node_host
) -> None:
    pods.create("survivor", [{NEURONCORE: 2}])
    pod = pods.wait_running("survivor")
    cores = pods.cores("survivor")
    node = pod.spec.node_name
    host = node_host(node)
    # Beside the extender the plugin withholds nothing (docs/architecture.md): allocatable is
    # the capacity, and that is what it must come back to.
    capacity = cluster.core.read_node(node).status.capacity
    before = (int(capacity[NEURON]), int(capacity[NEURONCORE]))
    wait_for("allocatable to settle", lambda: cluster.allocatable(node) == before, 60)
    # The plugin listens in its pod's network namespace, so `ss` on the node cannot see it:
    # check the socket files, and registration through allocatable coming back.
    before_sockets = plugin_sockets(host)
    assert all(len(names) == 1 for names in before_sockets.values()), before_sockets

    host.check_output("systemctl restart kubelet")
    wait_for("kubelet active", lambda: host.service("kubelet").is_running, 60)

    def served_again() -> bool:
        # The kubelet deleted the sockets; the plugin serves each resource on a new name.
        now = plugin_sockets(host)
        return all(len(now[s]) == 1 and now[s] != before_sockets[s] for s in now)

    wait_for("plugin sockets back under new names", served_again, 60)
    wait_for("allocatable back", lambda: cluster.allocatable(node) == before, 90)

    after = pods.get("survivor")
    assert after.status.phase == "Running"
    assert after.status.container_statuses[0].restart_count == 0
    ids = "AWS_NEURON_IDS"
    assert after.metadata.annotations[ids] == pod.metadata.annotations[ids]
    assert pods.cores("survivor") == cores

    pods.create("after-restart", [{NEURONCORE: 2}], node=node)
    pods.wait_running("after-restart")
    assert not set(pods.cores("after-restart")) & set(cores)
