"""A node runs either the device plugin or the DRA driver, never both: the refusal without
`dra.nodeSelector`, and the device plugin's affinity that keeps off the DRA nodes."""

from chartlib import (
    AUTO_MODE_OFF,
    one,
    pod_spec,
    render,
    render_error,
    required_node_terms,
    workload,
)
from dralib import ALONE, with_dra
from neuron_k8s.topology import INSTANCE_TYPES

# ---- never the device plugin and the DRA driver on one node ------------------------------------


def test_both_without_a_node_selector_are_refused_with_a_sentence():
    error = render_error({"dra": {"enabled": True}})
    assert (
        "dra.enabled=true with devicePlugin.enabled=true needs dra.nodeSelector: the device"
        " plugin and a DRA driver cannot run on the same node"
    ) in error
    assert "or set devicePlugin.enabled=false to run the DRA driver alone." in error


def test_the_driver_alone_needs_no_node_selector():
    obj = one(render({**ALONE, "dra": {"enabled": True}}), "DaemonSet", "dra")
    assert "nodeSelector" not in pod_spec(obj)


def test_device_plugin_affinity_excludes_the_dra_nodes(dra):
    (term,) = required_node_terms(workload(dra, "devicePlugin"))
    assert term["matchExpressions"] == [
        {
            "key": "node.kubernetes.io/instance-type",
            "operator": "In",
            "values": list(INSTANCE_TYPES),
        },
        AUTO_MODE_OFF,
        {"key": "neuron.k8s.local/dra", "operator": "NotIn", "values": ["true"]},
    ]


def test_device_plugin_affinity_excludes_every_dra_label_in_every_term():
    user_affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["a"]}]},
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n"]}]},
                ]
            }
        }
    }
    objs = render(
        {
            "devicePlugin": {"affinity": user_affinity},
            "dra": {"enabled": True, "nodeSelector": {"zone": "b", "accel": "dra"}},
        }
    )
    excluded = [
        AUTO_MODE_OFF,
        {"key": "accel", "operator": "NotIn", "values": ["dra"]},
        {"key": "zone", "operator": "NotIn", "values": ["b"]},
    ]
    assert required_node_terms(workload(objs, "devicePlugin")) == [
        {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["a"]}, *excluded]},
        {
            "matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n"]}],
            "matchExpressions": excluded,
        },
    ]


def test_device_plugin_without_instance_types_still_excludes_the_dra_nodes():
    objs = with_dra(devicePlugin={"instanceTypes": []})
    assert required_node_terms(workload(objs, "devicePlugin")) == [
        {
            "matchExpressions": [
                AUTO_MODE_OFF,
                {"key": "neuron.k8s.local/dra", "operator": "NotIn", "values": ["true"]},
            ]
        }
    ]


def test_the_dra_driver_keeps_off_auto_mode_nodes_but_not_its_own(dra):
    # Changed with the compute-type exclusion: AWS's chart 1.10 keeps its DRA driver off EKS Auto
    # Mode nodes too, whose own device plugin serves the same devices.
    (term,) = required_node_terms(one(dra, "DaemonSet", "dra"))
    assert term["matchExpressions"][1:] == [AUTO_MODE_OFF]
