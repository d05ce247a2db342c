"""Adversarial requests for the extender's HTTP server, shared by the fuzz tests and
plugin-src/fuzz/fuzz_extender.py: well-formed envelopes with values of the wrong types, huge
arrays, deep nesting, invalid UTF-8, lying lengths, broken chunking, wrong paths and
methods. `send` delivers one over a raw socket and returns the status, or None when the server
closed the connection without answering (allowed only for bodies that never arrive whole)."""

from __future__ import annotations

import json
import socket
from typing import Any

from hypothesis import strategies as st

# Every status the server may answer with (server.py's docstring); 500 would be a bug.
DEFINED = {200, 400, 404, 405, 411, 413}
VERBS = ("filter", "prioritize", "bind")

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63),
    st.floats(allow_nan=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=20,
)
# Field names kube-scheduler sends, in any case (Go's decoder folds case).
names = st.sampled_from(
    ["Pod", "pod", "POD", "NodeNames", "nodenames", "Nodes", "PodName", "PodNamespace",
     "PodUID", "Node", "metadata", "spec", "containers", "initContainers", "resources",
     "limits", "requests", "aws.amazon.com/neuroncore", "aws.amazon.com/neuron", "items",
     "name", "uid", "annotations", "neuron.k8s.local/allocation", "schedulerName"]
)  # fmt: skip


def _shaped(depth: int) -> st.SearchStrategy[Any]:
    """Objects shaped like extender requests, with the values anywhere of any type."""
    if depth == 0:
        return json_values
    return st.one_of(
        json_values,
        st.dictionaries(names, st.deferred(lambda: _shaped(depth - 1)), max_size=6),
        st.lists(st.deferred(lambda: _shaped(depth - 1)), max_size=4),
    )


# A value of each JSON type, empty and not, to put where another type belongs.
wrong = st.sampled_from([None, True, 0, -1, 1.5, "", "x", [], [1], ["x"], {}, {"a": 1}])


def _maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The value, or one of another type in its place."""
    return st.one_of(strategy, wrong)


_containers = st.lists(
    _maybe(
        st.fixed_dictionaries(
            {},
            optional={
                "name": _maybe(st.text(max_size=5)),
                "restartPolicy": _maybe(st.just("Always")),
                "resources": _maybe(
                    st.fixed_dictionaries(
                        {},
                        optional={
                            s: _maybe(
                                st.dictionaries(
                                    st.sampled_from(
                                        [
                                            "aws.amazon.com/neuroncore",
                                            "aws.amazon.com/neuron",
                                            "cpu",
                                        ]
                                    ),
                                    json_values,
                                    max_size=2,
                                )
                            )
                            for s in ("limits", "requests")
                        },
                    )
                ),
            },
        )
    ),
    max_size=3,
)
# Pods whose every level may hold a value of the wrong type.
pods = _maybe(
    st.fixed_dictionaries(
        {"metadata": _maybe(st.dictionaries(names, json_values, max_size=4))},
        optional={
            "spec": _maybe(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "containers": _maybe(_containers),
                        "initContainers": _maybe(_containers),
                        "schedulerName": json_values,
                    },
                )
            )
        },
    )
)


def _pod(cores: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "default", "uid": "u"},
        "spec": {"containers": [{"name": "m", "resources": {"limits": {
            "aws.amazon.com/neuroncore": cores}}}]},
    }  # fmt: skip


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["shaped", "pod", "pods", "huge", "deep", "bytes", "utf8"]))
    if kind == "shaped":
        return json.dumps(draw(_shaped(4))).encode()
    if kind == "pods":
        field = draw(st.sampled_from(["NodeNames", "Nodes"]))
        nodes = (
            ["inf2-a"] if field == "NodeNames" else {"items": [{"metadata": {"name": "inf2-a"}}]}
        )
        doc = {"Pod": draw(pods), field: nodes, "PodName": "p", "PodNamespace": "default",
               "PodUID": draw(json_values), "Node": "inf2-a"}  # fmt: skip
        return json.dumps(doc).encode()
    if kind == "pod":
        doc = {"Pod": _pod(draw(json_values)), "NodeNames": draw(st.lists(json_values, max_size=5))}
        return json.dumps(doc).encode()
    if kind == "huge":
        n = draw(st.sampled_from([10_000, 100_000]))
        return json.dumps({"Pod": _pod("1"), "NodeNames": [f"n{i}" for i in range(n)]}).encode()
    if kind == "deep":
        depth = draw(st.sampled_from([100, 1_000, 100_000]))
        return b'{"Pod":' + b"[" * depth + b"]" * depth + b"}"
    if kind == "utf8":
        return b'{"PodName":"\xff\xfe\xc3","Node":"\xed\xa0\x80"}'
    return draw(st.binary(max_size=200))


@st.composite
def requests(draw: st.DrawFn) -> tuple[bytes, bool]:
    """(raw HTTP request, whether its body arrives whole)."""
    method = draw(st.sampled_from(["POST"] * 6 + ["GET", "PUT", "DELETE", "PATCH", "HEAD"]))
    printable = st.characters(min_codepoint=33, max_codepoint=126)
    other = st.text(printable, max_size=15).map(lambda s: "/" + s)
    path = draw(st.one_of(st.sampled_from([f"/{v}" for v in VERBS] * 3), other))
    body = draw(bodies())
    framing = draw(st.sampled_from(["length", "length", "short", "none", "chunked", "badchunk"]))
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    if framing == "length":
        return head.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode() + body, True
    if framing == "short":  # the length says more than arrives
        return head.encode() + f"Content-Length: {len(body) + 10}\r\n\r\n".encode() + body, False
    if framing == "none":
        return head.encode() + b"\r\n", True
    if framing == "chunked":
        chunk = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        return head.encode() + b"Transfer-Encoding: chunked\r\n\r\n" + chunk, True
    return head.encode() + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n" + body, True


def send(port: int, raw: bytes, timeout: float = 10.0) -> int | None:
    """Send one request and half-close; the answer's status, or None when there was none."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(raw)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server answered and closed before reading all of it: read the answer
        data = b""
        while b"\r\n" not in data:
            try:
                chunk = s.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
    if not data.startswith(b"HTTP/1."):
        return None
    return int(data.split(b" ", 2)[1])
