"""Malformed or unexpected requests get clear answers and the server stays up."""

from __future__ import annotations

import http.client
import json

import pytest
from extender_helpers import filter_args, make_node, make_pod


@pytest.fixture
def ext(cluster, start_extender):
    cluster.put("nodes", make_node("inf2-a"))
    return start_extender()


def _still_serving(ext) -> None:
    assert ext.get("/healthz").status == 200
    body = ext.post("filter", filter_args(make_pod("ok"), ["inf2-a"])).json()
    assert body["NodeNames"] == ["inf2-a"]


def _raw(ext, verb: str, body: bytes):
    return ext.request("POST", f"/{verb}", body, {"Content-Type": "application/json"})


@pytest.mark.parametrize("verb", ["filter", "prioritize", "bind"])
def test_non_json_body_is_a_400_with_error(ext, verb):
    resp = _raw(ext, verb, b"{not json")
    assert resp.status == 400
    assert "not valid JSON" in resp.json()["Error"]
    _still_serving(ext)


@pytest.mark.parametrize("verb", ["filter", "prioritize", "bind"])
def test_json_that_is_not_an_object_is_a_400(ext, verb):
    resp = _raw(ext, verb, b"[1, 2]")
    assert resp.status == 400
    assert "must be a JSON object, got an array" in resp.json()["Error"]
    _still_serving(ext)


def test_filter_without_pod_is_a_400(ext):
    resp = ext.post("filter", {"NodeNames": ["inf2-a"]})
    assert resp.status == 400
    assert resp.json()["Error"] == "malformed filter request: ExtenderArgs.Pod is missing"
    _still_serving(ext)


def test_filter_with_null_pod_is_a_400(ext):
    resp = ext.post("filter", {"Pod": None, "NodeNames": ["inf2-a"]})
    assert resp.status == 400
    assert "Pod is missing" in resp.json()["Error"]


def test_filter_with_null_nodes_and_null_node_names_is_a_400(ext):
    resp = ext.post("filter", {"Pod": make_pod("p"), "Nodes": None, "NodeNames": None})
    assert resp.status == 400
    assert "neither NodeNames" in resp.json()["Error"]
    _still_serving(ext)


def test_filter_with_null_items_in_node_list_answers_empty(ext):
    resp = ext.post("filter", {"Pod": make_pod("p"), "Nodes": {"items": None}})
    assert resp.status == 200
    assert resp.json()["Nodes"]["items"] == []


def test_filter_with_empty_node_names_answers_empty(ext):
    body = ext.post("filter", filter_args(make_pod("p"), [])).json()
    assert body["NodeNames"] == [] and body["Error"] == ""


def test_filter_with_node_names_of_wrong_type_is_a_400(ext):
    resp = ext.post("filter", {"Pod": make_pod("p"), "NodeNames": "inf2-a"})
    assert resp.status == 400
    assert "NodeNames must be an array of strings, got a string" in resp.json()["Error"]
    resp = ext.post("filter", {"Pod": make_pod("p"), "NodeNames": ["inf2-a", 7]})
    assert resp.status == 400
    assert "NodeNames[1]" in resp.json()["Error"]
    _still_serving(ext)


def test_filter_with_pod_of_wrong_type_is_a_400(ext):
    resp = ext.post("filter", {"Pod": "my-pod", "NodeNames": ["inf2-a"]})
    assert resp.status == 400
    assert "Pod must be a Pod object, got a string" in resp.json()["Error"]


def test_filter_with_node_items_without_names_is_a_400(ext):
    resp = ext.post("filter", {"Pod": make_pod("p"), "Nodes": {"items": [{"metadata": {}}]}})
    assert resp.status == 400
    assert "items[0] has no metadata.name" in resp.json()["Error"]


def test_pod_with_garbage_spec_fails_nodes_with_reason(ext):
    pod = make_pod("p")
    pod["spec"]["containers"] = "not a list"
    body = ext.post("filter", filter_args(pod, ["inf2-a"])).json()
    assert "no containers list" in body["FailedAndUnresolvableNodes"]["inf2-a"]
    _still_serving(ext)


def test_pod_with_non_numeric_request_fails_nodes_with_reason(ext):
    pod = make_pod("p", [("m", {"aws.amazon.com/neuroncore": "two"})])
    body = ext.post("filter", filter_args(pod, ["inf2-a"])).json()
    assert "is not a whole number" in body["FailedAndUnresolvableNodes"]["inf2-a"]


def test_prioritize_of_unservable_pod_scores_zero(ext):
    pod = make_pod("p", [("m", {"aws.amazon.com/neuroncore": "-1"})])
    body = ext.post("prioritize", filter_args(pod, ["inf2-a"])).json()
    assert body == [{"Host": "inf2-a", "Score": 0}]


def test_bind_without_node_is_a_400(ext):
    resp = ext.post("bind", {"PodName": "p", "PodNamespace": "default", "PodUID": "u"})
    assert resp.status == 400
    assert resp.json() == {"Error": "malformed bind request: ExtenderBindingArgs.Node is missing"}
    _still_serving(ext)


def test_bind_with_number_for_name_is_a_400(ext):
    resp = ext.post("bind", {"PodName": 5, "PodNamespace": "default", "Node": "inf2-a"})
    assert resp.status == 400
    assert "PodName must be a string, got a number" in resp.json()["Error"]


def test_unknown_verb_is_a_404_naming_the_endpoints(ext):
    resp = ext.post("preempt", {"Pod": make_pod("p")})
    assert resp.status == 404
    assert "POST /filter" in resp.json()["Error"]
    _still_serving(ext)


@pytest.mark.parametrize("verb", ["filter", "prioritize", "bind"])
def test_get_on_a_verb_is_a_405_with_allow_post(ext, verb):
    resp = ext.get(f"/{verb}")
    assert resp.status == 405
    assert resp.headers["Allow"] == "POST"
    assert "takes POST" in resp.json()["Error"]
    _still_serving(ext)


def test_post_on_a_probe_is_a_405(ext):
    resp = ext.post("healthz", {})
    assert resp.status == 405
    assert resp.headers["Allow"] == "GET"


def test_post_without_content_length_is_a_411(ext):
    conn = http.client.HTTPConnection("127.0.0.1", ext.port, timeout=5)
    conn.putrequest("POST", "/filter")
    conn.endheaders()
    resp = conn.getresponse()
    assert resp.status == 411
    conn.close()
    _still_serving(ext)


def test_chunked_request_body_is_accepted(ext):
    conn = http.client.HTTPConnection("127.0.0.1", ext.port, timeout=5)
    body = json.dumps(filter_args(make_pod("p"), ["inf2-a"])).encode()
    conn.request(
        "POST",
        "/filter",
        body=iter([body[:100], body[100:]]),
        headers={"Transfer-Encoding": "chunked"},
        encode_chunked=True,
    )
    resp = conn.getresponse()
    assert resp.status == 200
    assert json.loads(resp.read())["NodeNames"] == ["inf2-a"]
    conn.close()


def test_connection_stays_usable_after_an_error(ext):
    conn = http.client.HTTPConnection("127.0.0.1", ext.port, timeout=5)
    conn.request("POST", "/filter", body=b"nope")
    bad = conn.getresponse()
    bad.read()
    conn.request("POST", "/filter", body=json.dumps(filter_args(make_pod("p"), ["inf2-a"])))
    good = conn.getresponse()
    assert (bad.status, good.status) == (400, 200)
    conn.close()


def test_internal_error_is_a_500_and_the_server_survives(ext, monkeypatch):
    def boom(args):
        raise RuntimeError("bug")

    monkeypatch.setattr(ext.extender, "filter", boom)
    resp = ext.post("filter", filter_args(make_pod("p"), ["inf2-a"]))
    assert resp.status == 500
    assert "internal error in the Neuron extender: bug" in resp.json()["Error"]
    monkeypatch.undo()
    _still_serving(ext)


# ---- the request line and headers (server.py reads them itself) ----------------------------


def _exchange(ext, raw: bytes) -> bytes:
    """Send raw bytes, return everything the server answers before it closes or goes quiet."""
    import socket

    with socket.create_connection(("127.0.0.1", ext.port), timeout=5) as s:
        s.sendall(raw)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_a_bad_request_line_is_a_400(ext):
    assert _exchange(ext, b"GARBAGE\r\n\r\n").split(b"\r\n")[0].split()[1] == b"400"
    _still_serving(ext)


def test_a_header_line_without_a_colon_is_a_400(ext):
    answer = _exchange(ext, b"GET /healthz HTTP/1.1\r\nHost x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400")
    _still_serving(ext)


def test_a_header_line_over_64_kib_is_a_431(ext):
    answer = _exchange(ext, b"GET /healthz HTTP/1.1\r\nX: " + b"a" * 70000 + b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 431")
    _still_serving(ext)


def test_more_than_100_headers_is_a_431(ext):
    headers = b"".join(b"X-%d: 1\r\n" % i for i in range(101))
    answer = _exchange(ext, b"GET /healthz HTTP/1.1\r\n" + headers + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 431")
    _still_serving(ext)


def test_header_names_are_case_insensitive(ext):
    body = json.dumps(filter_args(make_pod("p"), ["inf2-a"])).encode()
    raw = b"POST /filter HTTP/1.1\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(body)
    answer = _exchange(ext, raw + body)
    assert answer.startswith(b"HTTP/1.1 200") and b'"inf2-a"' in answer


def test_connection_close_is_honoured_after_the_answer(ext):
    answer = _exchange(ext, b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\nGET /healthz")
    assert answer.count(b"HTTP/1.1 200") == 1 and b"Connection: close" in answer


def test_http_1_0_without_keep_alive_gets_one_answer(ext):
    answer = _exchange(ext, b"GET /healthz HTTP/1.0\r\n\r\nGET /healthz HTTP/1.0\r\n\r\n")
    assert answer.count(b" 200 ") == 1


def test_two_kept_alive_requests_get_two_answers(ext):
    one = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    answer = _exchange(ext, one + b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert answer.count(b"HTTP/1.1 200") == 2


def test_expect_100_continue_is_answered_before_the_body(ext):
    body = json.dumps(filter_args(make_pod("p"), ["inf2-a"])).encode()
    conn = http.client.HTTPConnection("127.0.0.1", ext.port, timeout=5)
    conn.putrequest("POST", "/filter")
    conn.putheader("Content-Length", str(len(body)))
    conn.putheader("Expect", "100-continue")
    conn.endheaders()
    interim = conn.sock.recv(64)
    conn.send(body)
    resp = conn.getresponse()
    assert interim.startswith(b"HTTP/1.1 100") and resp.status == 200
    conn.close()
