"""GetPreferredAllocation answers the extender's plan only when Allocate would serve it: none of
its cores held through the other resource or on an unhealthy device; otherwise the allocator
finds a set that is (review A6). Allocate's refusal names each holder once."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from dp_harness import NEURON, NEURONCORE, Admission, FakeApi
from local_node import Node as LocalNode
from neuron_k8s.allocator import Resource
from neuron_k8s.deviceplugin.allocation import AllocationError
from neuron_k8s.deviceplugin.ledger import Served, Snapshot
from neuron_k8s.deviceplugin.plugin import Plugin
from planned_pods import cores, put_planned

Node = Callable[..., tuple[Plugin, Admission]]


def test_a_plan_on_cores_held_through_the_other_resource_is_not_answered(
    api: FakeApi, node: Node
) -> None:
    # Failed on e7426af: the preference answered the plan 0,1 and Allocate refused it, though
    # cores 2..11 were free (the extender's view lagged a pod holding device 0).
    plugin, kubelet = node()
    put_planned(api, plugin, "whole", Resource.NEURON, [0])
    assert kubelet.admit("whole", [("m", NEURON, 1)]) == {"m": "0,1"}
    put_planned(api, plugin, "b", Resource.NEURONCORE, [0, 1])
    got = cores(kubelet.admit("b", [("m", NEURONCORE, 2)])["m"])
    assert len(got) == 2 and not set(got) & {0, 1}


def test_a_plan_on_a_device_gone_unhealthy_is_not_answered_to_a_lagging_kubelet() -> None:
    node = LocalNode("inf2.24xlarge")
    assert node.bind("p", [("m", NEURONCORE, 2)])
    planned = node.plan_of("p")["m"]
    node.state.set_unhealthy(frozenset({planned[0] // 2}))
    node.pr.pods.add(("default", "p"))
    every = [str(i) for i in range(12)]  # the kubelet has not seen the health change yet
    got = node.service.preferred(Resource.NEURONCORE, every, [], 2)
    assert not {int(i) for i in got} & set(planned)


def test_a_refusal_names_a_holder_listed_and_just_served_once() -> None:
    node = LocalNode("inf2.24xlarge")
    ledger = node.state.ledger
    ledger.serve(Served(Resource.NEURON, (1,), 5.0, "uid-p", "default/p", "m"))
    listing = {("default", "p", "m"): {Resource.NEURON: (1,)}}
    ledger.take(Snapshot(listing, frozenset({("default", "p")}), 5.5))  # both kept
    node.pr.down = True  # no fresher List to decide on
    with pytest.raises(AllocationError) as err:
        node.service.allocate(Resource.NEURONCORE, [["2", "3"]])
    assert err.value.message.count("default/p/m") == 1
