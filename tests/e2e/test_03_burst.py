"""Many pods at once: never a core twice, every set valid, the rest wait with a reason."""

from collections import defaultdict

from conftest import (
    INSTANCE_TYPE,
    NEURON,
    NEURONCORE,
    Cluster,
    Pods,
    contiguous,
    needs_kind,
    valid_on,
    wait_for,
)


def test_a_burst_beyond_capacity_shares_no_core_and_waits_with_the_extenders_reason(
    cluster: Cluster, pods: Pods
) -> None:
    needs_kind()
    total = sum(cluster.allocatable(n)[1] for n in cluster.neuron_nodes())
    # Four cores a pod, a quarter of them as two whole devices: kube-scheduler counts the two
    # resources apart and sees room for all; only the extender knows the cores are gone.
    count = total // 4 + 2
    names = []
    for i in range(count):
        want = {NEURON: 2} if i % 4 == 0 else {NEURONCORE: 4}
        names.append(pods.create(f"burst-{i:02d}", [want]))

    def settled() -> tuple[list[str], list[str]] | None:
        running = [n for n in names if pods.get(n).status.phase == "Running"]
        pending = [n for n in names if n not in running]
        refused = [n for n in pending if "contiguous free" in pods.scheduling_failure(n)]
        return (running, pending) if len(running) == total // 4 and refused == pending else None

    running, pending = wait_for("the burst to settle", settled, timeout=240, every=2)
    assert len(pending) == 2

    used: dict[str, set[int]] = defaultdict(set)
    for name in running:
        pod = pods.get(name)
        node = pod.spec.node_name
        cores = pods.cores(name)
        pods.wait_recorded(name)
        instance_type = cluster.core.read_node(node).metadata.labels[INSTANCE_TYPE]
        assert len(cores) == 4 and contiguous(cores), f"{name} on {node}: {cores}"
        assert valid_on(instance_type, cores), f"{name} on {instance_type}: {cores}"
        assert not used[node] & set(cores), f"{name} shares cores on {node}: {cores}"
        used[node] |= set(cores)

    pods.delete(*running[:2])
    for name in pending:
        pods.wait_running(name, timeout=120)
    # The pods that were waiting took only freed cores: still no core twice on a node.
    still = {n: (pods.get(n).spec.node_name, set(pods.cores(n))) for n in running[2:] + pending}
    by_node: dict[str, set[int]] = defaultdict(set)
    for name, (node, cores) in still.items():
        assert not by_node[node] & cores, f"{name} shares cores on {node}"
        by_node[node] |= cores
