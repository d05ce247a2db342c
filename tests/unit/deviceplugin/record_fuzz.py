"""Random and hostile pod objects for the plugin's pod view and preference path, shared by
test_record_fuzz.py (a few cases) and plugin-src/fuzz/fuzz_deviceplugin.py (--records, 10,000):
whatever a pod owner writes, node_pod and the PodView callbacks never raise, and the other,
well-formed pods of the node keep their plans and are answered and served exactly as without
the hostile pod."""

from __future__ import annotations

import json
from typing import Any

from dp_harness import NEURON, NEURONCORE
from hypothesis import strategies as st
from local_node import NODE, Node
from neuron_k8s.allocator import Resource
from neuron_k8s.deviceplugin.metrics import Metrics
from neuron_k8s.deviceplugin.plugin import Config, Plugin
from neuron_k8s.deviceplugin.podview import PodView
from neuron_k8s.pods import ALLOCATION, AWS_NEURON_IDS, NEURON_ALLOC_TIME, NEURON_ALLOCATED

TYPE = "inf2.24xlarge"
# The well-formed pods: (name, containers, init containers), bound in this order.
GOOD: list[tuple[str, list[tuple[str, str, int]], list[tuple[str, str, int]]]] = [
    ("a", [("m", NEURONCORE, 2)], []),
    ("b", [("m", NEURON, 1)], []),
    ("c", [("m", NEURONCORE, 2)], [("warm", NEURONCORE, 1)]),
]

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=12),
)
json_any = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
index = st.one_of(
    st.integers(-3, 30), st.integers(-(2**64), 2**64), st.sampled_from([1.5, "1", None, True])
)
indices = st.one_of(st.lists(index, max_size=6), json_any)
container = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["m", "warm", "x", "", 7]),
        "resource": st.sampled_from([NEURON, NEURONCORE, "example.com/gpu", 3]),
        "ids": indices,
        "cores": indices,
        "devices": indices,
    }
)
allocation = st.one_of(
    st.builds(
        lambda node, cs: json.dumps({"node": node, "containers": cs}),
        st.sampled_from([NODE, "other-node", "", 0]),
        st.lists(container, max_size=3),
    ),
    json_any.map(json.dumps),
    st.text(max_size=40),
    st.sampled_from(["[" * 5000 + "]" * 5000, "{" * 70_000]),
)
aws_ids = st.one_of(
    st.lists(st.integers(-2, 2**40), max_size=6).map(lambda xs: ",".join(map(str, xs))),
    st.builds(lambda a, b: f"{a}-{b}", st.integers(-5, 2**40), st.integers(-5, 2**40)),
    st.text(alphabet="0123456789,- x", max_size=30),
)
annotations = st.fixed_dictionaries(
    {},
    optional={
        ALLOCATION: allocation,
        AWS_NEURON_IDS: aws_ids,
        NEURON_ALLOCATED: st.sampled_from(["true", "false", ""]),
        NEURON_ALLOC_TIME: st.one_of(st.text(max_size=8), st.just("9" * 5000)),
    },
)
quantity = st.one_of(st.integers(-2, 40), st.text(max_size=6), st.just("1" * 5000), json_any)
spec_container = st.fixed_dictionaries(
    {"name": st.sampled_from(["m", "warm", "x"])},
    optional={
        "resources": st.one_of(
            st.fixed_dictionaries(
                {},
                optional={
                    "limits": st.dictionaries(st.sampled_from([NEURON, NEURONCORE]), quantity),
                    "requests": st.dictionaries(st.sampled_from([NEURON, NEURONCORE]), quantity),
                },
            ),
            json_any,
        ),
        "restartPolicy": st.sampled_from(["Always", "Never"]),
    },
)
spec = st.one_of(
    st.fixed_dictionaries(
        {"containers": st.lists(spec_container, max_size=3)},
        optional={"initContainers": st.lists(spec_container, max_size=2), "nodeName": json_any},
    ),
    json_any,
)
status = st.one_of(
    st.fixed_dictionaries(
        {"phase": st.sampled_from(["Pending", "Running", "Succeeded", "Failed", 5])},
        optional={"containerStatuses": json_any},
    ),
    json_any,
)
hostile_pod = st.one_of(
    st.fixed_dictionaries(
        {
            "metadata": st.fixed_dictionaries(
                {
                    "name": st.sampled_from(["evil", "evil-2", ""]),
                    "namespace": st.sampled_from(["default", "other"]),
                    "uid": st.just("uid-evil"),
                    "annotations": annotations,
                }
            ),
            "spec": spec,
            "status": status,
        }
    ),
    json_any,
)


def _node() -> Node:
    node = Node(TYPE)
    for name, containers, init in GOOD:
        assert node.bind(name, containers, init=init or None)
    return node


def _admit_all(node: Node) -> list[tuple[str, list[str]]]:
    """Each good pod's first container: the preference among every ID, then Allocate of it.
    A List has succeeded (the first preference takes one), as on a working node."""
    answers = []
    for name, containers, init in GOOD:
        _, resource, count = (init or containers)[0]
        node.pr.pods = {("default", name)}
        limit = node.shape.devices if resource == NEURON else node.shape.cores
        offered = [str(i) for i in range(limit)]
        ids = node.service.preferred(Resource(resource), offered, [], count)
        node.service.allocate(Resource(resource), [ids])
        answers.append((name, ids))
    return answers


def _good_plans(node: Node) -> dict[str, Any]:
    return {uid: pod.plan for uid, pod in node.pods.pods().items() if uid != "uid-evil"}


BASELINE_NODE = _node()
BASELINE = (_good_plans(BASELINE_NODE), _admit_all(BASELINE_NODE))


def check(evil: Any) -> None:
    """Feed `evil` to the pod view's callbacks and the node's pods; raise AssertionError if
    any well-formed pod's plan, preference or Allocate differs from the baseline."""
    node = _node()
    plugin = Plugin(Config(http_port=-1))
    plugin.state = node.state  # its pod-change callback, on this node's ledger
    view = PodView(None, NODE, node.shape, Metrics(), plugin._pod_changed)  # type: ignore[arg-type]
    good = list(node.pods.objects.values())
    view._on_synced([*good, evil])
    for kind in ("ADDED", "MODIFIED", "DELETED", "ADDED"):
        view._on_event(kind, evil)  # type: ignore[arg-type]
    if isinstance(evil, dict):
        node.pods.objects["uid-evil"] = evil
    plans, answers = BASELINE
    assert _good_plans(node) == plans, "a well-formed pod's plan changed"
    assert _admit_all(node) == answers, "a well-formed pod was answered differently"
