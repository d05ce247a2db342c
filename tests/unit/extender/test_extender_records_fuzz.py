"""Hostile pod records against the extender's pod view (extender_records_fuzz.py): nothing
raises, and every well-formed pod counts exactly as it does without them.
plugin-src/fuzz/fuzz_extender.py --records runs the same check by the ten thousand."""

from __future__ import annotations

from extender_records_fuzz import cases, check
from hypothesis import HealthCheck, given, settings


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(case=cases())
def test_hostile_records_never_raise_nor_change_another_pods_count(case):
    check(case)
