"""The wire format, parsed without a server."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest
from extender_helpers import filter_args, make_node, make_pod
from neuron_k8s.extender.protocol import (
    NamesCache,
    ProtocolError,
    decode,
    filter_result,
    parse_binding_args,
    parse_extender_args,
    read_extender_args,
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


def _body(doc) -> bytes:
    # Go's json.Marshal: compact, fields in declaration order (Pod, Nodes, NodeNames).
    return json.dumps(doc, separators=(",", ":")).encode()


def test_fast_read_matches_the_plain_parse_for_what_kube_scheduler_sends():
    body = _body(filter_args(make_pod("p"), ["a", "b", "c"]))
    fast = read_extender_args(body, NamesCache())
    plain = parse_extender_args(decode(body))
    assert (fast.pod, fast.names, fast.node_names, fast.nodes) == (
        plain.pod,
        plain.names,
        plain.node_names,
        plain.nodes,
    )
    assert fast.names_key == b'["a","b","c"]'


def test_fast_read_reuses_the_names_of_an_identical_array():
    cache = NamesCache()
    first = read_extender_args(_body(filter_args(make_pod("p"), ["a", "b"])), cache)
    second = read_extender_args(_body(filter_args(make_pod("q"), ["a", "b"])), cache)
    assert second.names is first.names
    assert second.pod["metadata"]["name"] == "q"


@pytest.mark.parametrize(
    "body",
    [
        b'{"NodeNames":["a"],"Pod":{"metadata":{"name":"p"}},"Nodes":null}',  # not last
        b'{"Pod":{"metadata":{"name":"p"}},"NodeNames":["x"],"nodenames":["a"]}',  # last wins
        b'{"Pod":{"metadata":{"name":"p"}},"nodenames":["x"],"NodeNames":["a"]}',
        b'{"Pod":{"metadata":{"name":"p","annotations":{"k":"\\"NodeNames\\":[\\"x\\"]}"}}},'
        b'"NodeNames":["a"]}',
        b'{"Pod":{"metadata":{"name":"p"}},"NodeNames":["a"]}\n',
        b'{"Pod":{"metadata":{"name":"p"}},"NodeNames":["a"],"x":[1]}',  # unknown key after
    ],
)
def test_fast_read_agrees_with_the_plain_parse_on_unusual_bodies(body):
    fast = read_extender_args(body, NamesCache())
    assert fast.names == parse_extender_args(decode(body)).names == ["a"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"Pod":{"metadata":{"name":"p"}},"NodeNames":["a",7]}',
        b'{"Pod":null,"NodeNames":["a"]}',
        b'{"Pod":{"metadata":{"name":"p"}},"NodeNames":["a"}',
    ],
)
def test_fast_read_words_errors_as_the_plain_parse(body):
    with pytest.raises(ProtocolError) as fast:
        read_extender_args(body, NamesCache())
    with pytest.raises(ProtocolError) as plain:
        parse_extender_args(decode(body))
    assert str(fast.value) == str(plain.value)


def _fresh(name):
    module = importlib.util.module_from_spec(importlib.util.find_spec(name))
    module.__spec__.loader.exec_module(module)
    return module


def test_wire_json_works_without_orjson(monkeypatch):
    monkeypatch.setitem(sys.modules, "orjson", None)  # as if it were not installed
    monkeypatch.setitem(sys.modules, "neuron_k8s.wirejson", _fresh("neuron_k8s.wirejson"))
    plain = _fresh("neuron_k8s.extender.protocol")
    assert plain._loads is json.loads
    body = _body(filter_args(make_pod("p"), ["a", "b"]))
    assert plain.read_extender_args(body, plain.NamesCache()).names == ["a", "b"]
    doc = {"NodeNames": ["a"], "FailedNodes": {"b": "é"}, "Error": ""}
    assert json.loads(plain.encode(doc)) == doc
