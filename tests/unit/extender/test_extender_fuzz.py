"""Adversarial requests to the extender's HTTP server (extender_fuzz.py): every answer is a
defined status, never a 500, and the server keeps serving. plugin-src/fuzz/fuzz_extender.py
sends the same kinds of requests by the ten thousand, against the extender as a process."""

from __future__ import annotations

import json

from extender_fuzz import DEFINED, requests, send
from hypothesis import HealthCheck, example, given, settings


def post(verb: str, doc: object) -> tuple[bytes, bool]:
    body = json.dumps(doc).encode()
    head = f"POST /{verb} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body, True


# Found by the fuzzer: a pod whose spec is an array (500 on main before).
ARRAY_SPEC = {"Pod": {"metadata": {}, "spec": [1]}, "NodeNames": ["inf2-a"]}


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(request=requests())
@example(request=post("filter", ARRAY_SPEC))
@example(request=post("prioritize", ARRAY_SPEC))
# Found by the fuzzer: a request target that urlsplit reads as a broken IPv6 host (no answer).
@example(request=(b"POST //[ HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", True))
@example(
    request=post(
        "filter",
        {"Pod": {"metadata": {"name": {}}, "spec": {"containers": [1]}}, "NodeNames": ["a"]},
    )
)
def test_every_adversarial_request_gets_a_defined_answer(extender, cluster, request):
    raw, whole = request
    status = send(extender.port, raw)
    if whole:
        assert status in DEFINED, raw[:300]
    else:
        assert status is None or status in DEFINED, raw[:300]
    assert extender.get("/healthz").status == 200
