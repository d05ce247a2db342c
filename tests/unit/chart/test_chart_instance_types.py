"""One table of instance types, neuron_k8s.topology: the device plugin's and the DRA driver's
defaults are it, and every instance type an example or the kind cluster names has a topology
there."""

import pytest
import yaml
from chartlib import EXAMPLES, REPO, render, required_node_terms, values_yaml, workload
from neuron_k8s.topology import INSTANCE_TYPES


def test_the_default_instance_types_are_the_topology_tables():
    # The device plugin's neuron-k8s default lives in the chart (its values default is null).
    assert values_yaml()["dra"]["instanceTypes"] == list(INSTANCE_TYPES)
    (term,) = required_node_terms(workload(render(), "devicePlugin"))
    assert term["matchExpressions"][0]["values"] == list(INSTANCE_TYPES)


@pytest.mark.parametrize("block", ["devicePlugin", "dra"])
@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_every_instance_type_an_example_names_has_a_topology(name, block):
    values = yaml.safe_load((EXAMPLES / name).read_text()) or {}
    named = (values.get(block) or {}).get("instanceTypes") or []
    assert [t for t in named if t not in INSTANCE_TYPES] == []


def test_every_instance_type_the_kind_cluster_imitates_has_a_topology():
    config = yaml.safe_load((REPO / "kind-config.yaml").read_text())
    labels = [n.get("labels", {}).get("node.kubernetes.io/instance-type") for n in config["nodes"]]
    imitated = [t for t in labels if t]
    assert imitated and [t for t in imitated if t not in INSTANCE_TYPES] == []
