"""Adversarial calls of the plugin's gRPC services, shared by the fuzz test and
plugin-src/fuzz/fuzz_deviceplugin.py: messages with IDs that are not IDs, huge and duplicate
lists, sizes out of range, and raw bytes that are no message at all. `call` makes one and
returns the status code's name."""

from __future__ import annotations

from typing import Any

import grpc
from hypothesis import strategies as st
from neuron_k8s.deviceplugin.api import pb

# OK and the refusals Allocate and GetPreferredAllocation give, and gRPC's own answer to a
# message over its size limit; INTERNAL is gRPC's answer to bytes that are no message.
DEFINED = {"OK", "INVALID_ARGUMENT", "FAILED_PRECONDITION", "RESOURCE_EXHAUSTED"}
RAW_DEFINED = DEFINED | {"INTERNAL"}
SERVICE = "/v1beta1.DevicePlugin/"

ids = st.one_of(
    st.integers(-5, 40).map(str),
    st.sampled_from(["", "0x1", "01", " 1", "1 ", "-0", "nc-1", "\u0661", "1e3", "99999999999"]),
    st.text(max_size=8),
)
id_lists = st.one_of(
    st.lists(ids, max_size=8),
    st.integers(0, 24).map(lambda n: [str(i) for i in range(n)]),
    st.sampled_from([[str(i % 24) for i in range(100_000)], ["0"] * 1000]),
)
sizes = st.one_of(st.integers(-3, 30), st.sampled_from([-(2**31), 2**31 - 1]))


@st.composite
def calls(draw: st.DrawFn) -> tuple[str, bytes, bool]:
    """(method, serialized request, whether it is a well-formed message)."""
    kind = draw(st.sampled_from(["preferred", "allocate", "options", "prestart", "raw"]))
    if kind == "preferred":
        reqs = [
            pb.ContainerPreferredAllocationRequest(
                available_deviceIDs=draw(id_lists),
                must_include_deviceIDs=draw(id_lists),
                allocation_size=draw(sizes),
            )
            for _ in range(draw(st.integers(0, 3)))
        ]
        msg: Any = pb.PreferredAllocationRequest(container_requests=reqs)
        return "GetPreferredAllocation", msg.SerializeToString(), True
    if kind == "allocate":
        reqs = [
            pb.ContainerAllocateRequest(devices_ids=draw(id_lists))
            for _ in range(draw(st.integers(0, 3)))
        ]
        return "Allocate", pb.AllocateRequest(container_requests=reqs).SerializeToString(), True
    if kind == "options":
        return "GetDevicePluginOptions", pb.Empty().SerializeToString(), True
    if kind == "prestart":
        msg = pb.PreStartContainerRequest(devices_ids=draw(id_lists))
        return "PreStartContainer", msg.SerializeToString(), True
    method = draw(st.sampled_from(["GetPreferredAllocation", "Allocate", "PreStartContainer"]))
    return method, draw(st.binary(max_size=300)), False


def call(channel: grpc.Channel, method: str, body: bytes, timeout: float = 10.0) -> str:
    stub = channel.unary_unary(
        SERVICE + method, request_serializer=None, response_deserializer=None
    )
    try:
        stub(body, timeout=timeout)
    except grpc.RpcError as err:
        return str(err.code().name)
    return "OK"
