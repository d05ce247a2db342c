"""Adversarial calls of the plugin's gRPC services (grpc_fuzz.py): every answer is OK or a
defined refusal, never UNKNOWN (an unhandled error), and the plugin keeps serving.
plugin-src/fuzz/fuzz_deviceplugin.py makes the same kinds of calls by the ten thousand."""

from __future__ import annotations

import os
from typing import Any

import grpc
import pytest
from dp_harness import NEURON, NEURONCORE, FakeKubelet, allocate
from grpc_fuzz import DEFINED, RAW_DEFINED, call, calls
from hypothesis import HealthCheck, given, settings
from neuron_k8s.deviceplugin.api import target
from neuron_k8s.deviceplugin.plugin import Plugin


@pytest.fixture
def plugin(kubelet: FakeKubelet, start_plugin: Any) -> Plugin:
    return start_plugin(fake_instance_type="inf2.48xlarge")


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(request=calls())
def test_every_adversarial_call_gets_a_defined_answer(
    kubelet: FakeKubelet, start_plugin, short_dir, request
):
    if not hasattr(test_every_adversarial_call_gets_a_defined_answer, "plugin"):
        test_every_adversarial_call_gets_a_defined_answer.plugin = start_plugin(  # type: ignore[attr-defined]
            fake_instance_type="inf2.48xlarge"
        )
    method, body, well_formed = request
    for resource in (NEURON, NEURONCORE):
        sock = kubelet.registered(resource)[-1].endpoint
        with grpc.insecure_channel(target(os.path.join(short_dir, sock))) as channel:
            code = call(channel, method, body)
        assert code in (DEFINED if well_formed else RAW_DEFINED), (resource, method, body[:100])
    # Still serving: a plain allocation of one core works.
    allocate(kubelet.stub(NEURONCORE), ["23"])
