"""Many pods at once: never a core twice, every set valid, the rest wait with a reason."""

import time
from collections import defaultdict

import pytest
from conftest import (
    INSTANCE_TYPE,
    NEURON,
    NEURONCORE,
    NO_CONTIGUOUS_SET,
    Cluster,
    Pods,
    contiguous,
    needs_kind,
    valid_on,
    wait_for,
)

pytestmark = pytest.mark.matrix

INF2 = "inf2.48xlarge"
# A Neuron reason: the extender's (no valid contiguous set), or kube-scheduler's own count of a
# resource (Insufficient ...), which is checked before the extender is asked.
NEURON_REASONS = (NO_CONTIGUOUS_SET, "Insufficient aws.amazon.com/neuron")


def test_a_burst_beyond_capacity_shares_no_core_and_waits_with_a_reason(
    cluster: Cluster, pods: Pods
) -> None:
    needs_kind()
    total = sum(cluster.allocatable(n)[1] for n in cluster.neuron_nodes())  # quiet: all free
    # Four cores a pod, two more pods than fit. A quarter ask for two whole devices, which
    # only the inf2 ring accepts (trn1.32xlarge takes 1, 4, 8 or 16 devices).
    names = []
    for i in range(total // 4 + 2):
        if i % 4 == 0:
            names.append(pods.create(f"burst-{i:02d}", [{NEURON: 2}], node_type=INF2))
        else:
            names.append(pods.create(f"burst-{i:02d}", [{NEURONCORE: 4}]))

    def phases() -> dict[str, str]:
        return {n: pods.get(n).status.phase for n in names}

    untold: list[str] = []

    def settled() -> dict[str, str] | None:
        """The same phases for 10 s, and every waiting pod told why."""
        first = phases()
        # A pod that failed admission is settled too: the assertions below report it.
        untold[:] = [
            f"{n}: {p}"
            for n, p in first.items()
            if p == "Pending" and not pods.scheduling_failure(n)
        ]
        if untold:
            return None
        time.sleep(10)
        return first if phases() == first else None

    try:
        state = wait_for("the burst to settle", settled, timeout=300, every=2)
    except pytest.fail.Exception:
        pytest.fail(
            f"the burst did not settle; waiting without a reason: {untold}, phases: {phases()}"
        )
    running = [n for n, p in state.items() if p == "Running"]
    pending = [n for n, p in state.items() if p == "Pending"]
    others = {
        n: f"{p}: {pods.get(n).status.reason}: {pods.get(n).status.message}"
        for n, p in state.items()
        if p not in ("Running", "Pending")
    }
    assert not others, f"pods neither running nor waiting: {others}"
    assert len(pending) >= 2, f"{len(names)} pods of 4 cores cannot all fit in {total} cores"
    for name in pending:
        message = pods.scheduling_failure(name)
        assert any(r in message for r in NEURON_REASONS), f"{name}: {message}"

    used: dict[str, set[int]] = defaultdict(set)
    on_inf2 = []
    for name in running:
        node = pods.get(name).spec.node_name
        cores = pods.cores(name)
        pods.wait_recorded(name)
        instance_type = cluster.core.read_node(node).metadata.labels[INSTANCE_TYPE]
        assert len(cores) == 4 and contiguous(cores), f"{name} on {node}: {cores}"
        assert valid_on(instance_type, cores), f"{name} on {instance_type}: {cores}"
        assert not used[node] & set(cores), f"{name} shares cores on {node}: {cores}"
        used[node] |= set(cores)
        if instance_type == INF2:
            on_inf2.append(name)

    # Free one inf2 slot (two whole devices) per waiting pod: every waiting pod fits there.
    assert len(on_inf2) >= len(pending), f"on inf2: {on_inf2}, waiting: {pending}"
    deleted = on_inf2[: len(pending)]
    pods.delete(*deleted)
    for name in pending:
        pods.wait_running(name, timeout=120)
    # The pods that were waiting took only freed cores: still no core twice on a node.
    by_node: dict[str, set[int]] = defaultdict(set)
    for name in [n for n in running if n not in deleted] + pending:
        node = pods.get(name).spec.node_name
        cores = set(pods.cores(name))
        assert not by_node[node] & cores, f"{name} shares cores on {node}"
        by_node[node] |= cores
