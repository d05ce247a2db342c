"""The wire format, parsed without a server."""

from __future__ import annotations

import pytest
from extender_helpers import filter_args, make_node, make_pod
from neuron_k8s.extender.protocol import (
    ProtocolError,
    decode,
    filter_result,
    parse_binding_args,
    parse_extender_args,
)


def test_node_names_mode_keeps_names_in_order():
    args = parse_extender_args(filter_args(make_pod("p"), ["b", "a"]))
    assert args.names == ["b", "a"] and args.nodes is None


def test_node_list_mode_takes_names_from_items():
    nodes = [make_node("x"), make_node("y")]
    args = parse_extender_args({"Pod": make_pod("p"), "Nodes": {"items": nodes}})
    assert args.names == ["x", "y"] and args.node_names is None


def test_last_spelling_of_a_key_wins_as_in_go():
    doc = {"NodeNames": ["a"], "nodenames": ["b"], "Pod": make_pod("p")}
    assert parse_extender_args(doc).names == ["b"]


def test_result_has_the_go_field_names():
    args = parse_extender_args(filter_args(make_pod("p"), ["a"]))
    assert set(filter_result(args, ["a"], {}, {})) == {
        "Nodes",
        "NodeNames",
        "FailedNodes",
        "FailedAndUnresolvableNodes",
        "Error",
    }


def test_binding_args_accept_lower_case_keys():
    b = parse_binding_args({"podname": "p", "podnamespace": "ns", "poduid": "u", "node": "n"})
    assert (b.pod_name, b.pod_namespace, b.pod_uid, b.node) == ("p", "ns", "u", "n")


def test_binding_args_without_uid_are_accepted():
    assert parse_binding_args({"PodName": "p", "PodNamespace": "ns", "Node": "n"}).pod_uid == ""


def test_pod_without_metadata_is_refused():
    with pytest.raises(ProtocolError, match="Pod has no metadata"):
        parse_extender_args({"Pod": {"spec": {}}, "NodeNames": []})


def test_invalid_utf8_is_a_protocol_error():
    with pytest.raises(ProtocolError, match="not valid JSON"):
        decode(b"\xff\xfe{")
