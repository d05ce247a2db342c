"""`kubectl neuron` (docs/kubectl-neuron.md) against the kind cluster: what it says each pod
holds is what the pods' records and the claims' allocations say, read at the time (the cluster
is shared: other pods may hold cores too); its drawing is read from a real terminal (tmux at a
fixed size, the pane captured); an unhealthy device, a DRA core-set claim, and pods pending
for a rule and for room."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    NEURON,
    NEURONCORE,
    NO_CONTIGUOUS_SET,
    Cluster,
    Pods,
    quiet,
    wait_for,
)
from dra_claims import claims_on, dra_node
from realnodes import NeuronDriver

ROOT = Path(__file__).resolve().parents[2]
TRN1, INF2 = "trn1.32xlarge", "inf2.48xlarge"
UNHEALTHY_ANNOTATION = "neuron.k8s.local/unhealthy-devices"
LEGEND_END = "unhealthy device"  # the drawing's last line ends so
WIDTH, HEIGHT = 160, 60
BOX = re.compile(r"(\d+) ([\[!])(\S+?)([\]!])")


def kubectl_neuron(cluster: Cluster, *args: str) -> str:
    """The command's standard output, run as a user would (from the source tree)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "plugin-src" / "src"))
    cmd = [sys.executable, "-m", "neuron_k8s.fleet.cli", "--kubeconfig", cluster.kubeconfig]
    done = subprocess.run(
        [*cmd, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def node_json(cluster: Cluster, node: str) -> dict[str, Any]:
    (found,) = json.loads(kubectl_neuron(cluster, "nodes", node, "-o", "json"))
    return dict(found)


def in_terminal(cluster: Cluster, *args: str) -> tuple[str, str]:
    """`kubectl neuron ARGS` in a tmux pane of WIDTH x HEIGHT: the pane as text and with its
    colour escapes (capture-pane -e)."""
    session = f"kubectl-neuron-{uuid.uuid4().hex[:8]}"
    cli = [sys.executable, "-m", "neuron_k8s.fleet.cli", "--kubeconfig", cluster.kubeconfig]
    command = (
        f"env -u NO_COLOR PYTHONPATH={shlex.quote(str(ROOT / 'plugin-src' / 'src'))} "
        f"{shlex.join([*cli, *args])}; sleep 300"
    )
    size = ["-x", str(WIDTH), "-y", str(HEIGHT)]
    subprocess.run(["tmux", "new-session", "-d", "-s", session, *size, command], check=True)
    try:

        def pane(*flags: str) -> str:
            return subprocess.run(
                ["tmux", "capture-pane", "-p", *flags, "-t", session],
                capture_output=True,
                text=True,
                check=True,
            ).stdout

        plain = wait_for("the drawing in the pane", lambda: _finished(pane()), 60, 0.5)
        return plain, pane("-e")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)


def _finished(text: str) -> str | None:
    return text if LEGEND_END in text or "Traceback" in text else None


def drawn_node(text: str, node: str) -> tuple[dict[int, tuple[str, str]], list[str]]:
    """A node's block of the drawing: device -> (its box's left edge, its cells), and the
    block's lines."""
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(f"{node}  "))
    block = []
    for ln in lines[start:]:
        if not ln.strip():
            break
        block.append(ln)
    boxes = {int(m[1]): (m[2], m[3]) for ln in block for m in BOX.finditer(ln)}
    return boxes, block


def letter_of(block: list[str], who: str) -> str:
    """The letter the drawing gives the holder `who` (namespace/pod)."""
    line = next(ln for ln in block if re.match(rf"\s+\S {re.escape(who)}[ :]", ln))
    return line.split()[0]


@pytest.fixture(scope="module")
def held(cluster: Cluster) -> Iterator[tuple[Pods, str]]:
    """A pod on the trn1.32xlarge device-plugin node whose containers hold 3 cores and 1
    device, running and recorded; in a namespace of its own for the module."""
    node = cluster.node_of_type(TRN1)
    quiet(cluster)
    ns = f"e2e-kn-{uuid.uuid4().hex[:8]}"
    cluster.core.create_namespace({"metadata": {"name": ns}})
    pods = Pods(cluster, ns)
    try:
        pods.create("held", [{NEURONCORE: 3}, {NEURON: 1}], node=node)
        pods.wait_running("held")
        pods.wait_recorded("held")
        yield pods, node
    finally:
        cluster.core.delete_collection_namespaced_pod(ns, grace_period_seconds=0)
        wait_for(f"{ns} pods gone", lambda: not cluster.core.list_namespaced_pod(ns).items, 120)
        cluster.core.delete_namespace(ns)


def test_nodes_json_gives_each_container_the_cores_its_record_names(
    cluster: Cluster, held: tuple[Pods, str]
) -> None:
    pods, node = held
    recorded = {c["name"]: c for c in pods.allocation("held")["containers"]}
    doc = node_json(cluster, node)
    mine = {h["container"]: h for h in doc["holdings"] if h["namespace"] == pods.namespace}
    assert {n: (h["cores"], h["devices"]) for n, h in mine.items()} == {
        n: (c["cores"], c["devices"]) for n, c in recorded.items()
    }
    assert (doc["path"], doc["instanceType"]) == ("device-plugin", TRN1)
    held_cores = {c for h in doc["holdings"] for c in h["cores"]}
    assert doc["heldCores"] == len(held_cores)


def test_the_drawing_in_a_terminal_puts_the_pods_letter_on_its_cores_in_colour(
    cluster: Cluster, held: tuple[Pods, str]
) -> None:
    pods, node = held
    plain, coloured = in_terminal(cluster, "nodes", node)
    boxes, block = drawn_node(plain, node)
    held_now = node_json(cluster, node)
    letter = letter_of(block, f"{pods.namespace}/held")
    cpd = 2
    mine = {c for x in pods.allocation("held")["containers"] for c in x["cores"]}
    others = {c for h in held_now["holdings"] for c in h["cores"]} - mine
    for device, (_, cells) in boxes.items():
        for i, cell in enumerate(cells):
            core = device * cpd + i
            if core in mine:
                assert cell == letter, (core, block)
            elif core not in others:
                assert cell == ".", (core, block)
    assert sorted(boxes) == list(range(16)) and "\x1b[" in coloured
    assert all(len(ln) <= WIDTH for ln in block)


def test_pods_lists_each_container_with_its_node_cores_devices_and_path(
    cluster: Cluster, held: tuple[Pods, str]
) -> None:
    pods, node = held
    rows = json.loads(kubectl_neuron(cluster, "pods", "-n", pods.namespace, "-o", "json"))
    recorded = pods.allocation("held")["containers"]
    assert [(r["name"], r["container"], r["node"], r["path"], r["status"]) for r in rows] == [
        ("held", c["name"], node, "device-plugin", "Running") for c in recorded
    ]
    assert [(r["cores"], r["devices"]) for r in rows] == [
        (c["cores"], c["devices"]) for c in recorded
    ]


def test_a_dra_core_set_claim_shows_on_its_node_in_json_and_in_the_drawing(
    cluster: Cluster,
) -> None:
    with claims_on(cluster, dra_node(cluster, TRN1)) as claims:
        claims.core_template("four-cores", 4)
        claims.pod("cores", "four-cores")
        claims.running("cores")
        given = claims.claimed_cores("cores")
        doc = node_json(cluster, claims.node)
        mine = [h for h in doc["holdings"] if h["namespace"] == claims.namespace]
        assert doc["path"] == "dra"
        assert [(h["pod"], h["container"], h["cores"], h["claim"]) for h in mine] == [
            ("cores", "c0", given, claims.claim_name("cores"))
        ]
        plain, _ = in_terminal(cluster, "nodes", claims.node)
        boxes, block = drawn_node(plain, claims.node)
        letter = letter_of(block, f"{claims.namespace}/cores")
        assert [boxes[c // 2][1][c % 2] for c in given] == [letter] * len(given)


@pytest.fixture
def inf2_driver(cluster: Cluster) -> Iterator[tuple[str, NeuronDriver]]:
    node = cluster.node_of_type(INF2)
    driver = NeuronDriver(node)
    try:
        yield node, driver
    finally:
        driver.reset()
        wait_for("allocatable restored", lambda: cluster.allocatable(node) == (12, 24), 90)


def test_a_device_without_its_device_node_is_drawn_unhealthy(
    cluster: Cluster, inf2_driver: tuple[str, NeuronDriver]
) -> None:
    node, driver = inf2_driver
    driver.remove(3)
    wait_for(
        "the plugin to publish device 3 as unhealthy",
        lambda: (
            (cluster.core.read_node(node).metadata.annotations or {}).get(UNHEALTHY_ANNOTATION)
            == "3"
        ),
        60,
    )
    doc = node_json(cluster, node)
    assert list(doc["unhealthyDevices"]) == ["3"]
    held_cores = {c for h in doc["holdings"] for c in h["cores"]}
    assert doc["freeCores"] == 24 - len(held_cores | {6, 7})  # device 3 holds cores 6 and 7
    plain, _ = in_terminal(cluster, "nodes", node)
    boxes, block = drawn_node(plain, node)
    assert boxes[3][0] == "!" and all(boxes[d][0] == "[" for d in boxes if d != 3)
    assert any("device 3 unhealthy" in ln for ln in block)


def test_why_a_pod_asking_seven_devices_on_trn1_names_the_rule_and_the_sizes_that_fit(
    cluster: Cluster, pods: Pods
) -> None:
    pods.create("seven", [{NEURON: 7}], node_type=TRN1)
    message = pods.wait_unschedulable("seven", "does not support requests for device: 7")
    why = json.loads(kubectl_neuron(cluster, "why", "seven", "-n", pods.namespace, "-o", "json"))
    assert why["state"] == "pending"
    assert any("does not support requests for device: 7" in s for s in why["scheduler"])
    assert any(s in message for s in why["scheduler"]), (why["scheduler"], message)
    assert why["fits"] == ["trn1.32xlarge allows 1, 4, 8 or 16 devices; ask for 4 or 8"]
    dp = cluster.node_of_type(TRN1)
    reasons = {n["node"]: n["reason"] for n in why["nodes"]}
    assert "does not support requests for device: 7" in reasons[dp]


def test_why_a_pod_without_room_names_the_most_its_node_could_give(
    cluster: Cluster, pods: Pods
) -> None:
    # Cores taken on the ring leave every device countable (the scheduler's own check of
    # aws.amazon.com/neuron passes) but no run of all twelve: only the extender refuses.
    node = cluster.node_of_type(INF2)
    pods.create("cores", [{NEURONCORE: 2}], node=node)
    pods.wait_running("cores")
    pods.create("all", [{NEURON: 12}], node=node)
    pods.wait_unschedulable("all", NO_CONTIGUOUS_SET)
    most = node_json(cluster, node)["largestDeviceRequest"]
    why = json.loads(kubectl_neuron(cluster, "why", "all", "-n", pods.namespace, "-o", "json"))
    assert [(n["node"], n["reason"]) for n in why["nodes"]] == [
        (node, "no free contiguous set of 12 Neuron devices on inf2.48xlarge")
    ]
    assert why["fits"] == [
        f"no node it may run on has 12 devices free together now; the most one could give is "
        f"{most} devices ({node}): ask for {most} or wait"
    ]
    assert any(NO_CONTIGUOUS_SET in s for s in why["scheduler"])


def test_the_text_forms_are_plain_when_piped(cluster: Cluster, held: tuple[Pods, str]) -> None:
    pods, node = held
    for args in (("nodes", node), ("pods", "-A"), ("why", "held", "-n", pods.namespace)):
        out = kubectl_neuron(cluster, *args)
        assert out and "\x1b[" not in out, args
