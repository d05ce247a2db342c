"""A few cases of the record fuzzer (plugin-src/fuzz/fuzz_deviceplugin.py --records runs
10,000): a hostile pod on the node raises nothing in the pod view and changes nothing for the
node's well-formed pods."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from record_fuzz import check, hostile_pod


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(evil=hostile_pod)
def test_a_hostile_pod_changes_nothing_for_the_other_pods_of_the_node(evil: Any) -> None:
    check(evil)
