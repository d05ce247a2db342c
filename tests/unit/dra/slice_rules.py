"""What a Kubernetes API server refuses in a ResourceSlice, and what the scheduler refuses in a
pool, as the stand-in API (fake_api.py) and the layout tests check them.

- 1.37 (k8s.io/kubernetes pkg/apis/resource/validation, k8s.io/api resource/v1 types.go):
  a slice holds devices or sharedCounters, not both; at most 8 counter sets of at most 32
  counters, their names unique; at most 128 devices, 64 once one consumes counters or has
  taints; a device consumes from at most 2 counter sets (one entry each), at most 32 counters
  each, has at most 32 attributes and capacities and at most 16 taints of a known effect.
- 1.34: counters and the devices that consume them in one slice, at most 32 counters a slice.
- The pool (k8s.io/dynamic-resource-allocation structured, pools): device and counter set
  names unique across the pool's slices; every consumed counter exists in a counter set of the
  pool.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

MAX_DEVICES = 128
MAX_DEVICES_ADVANCED = 64
MAX_COUNTER_SETS = 8
MAX_COUNTERS_PER_SET = 32
MAX_CONSUMPTIONS = 2
MAX_COUNTERS_PER_CONSUMPTION = 32
MAX_ATTRIBUTES_AND_CAPACITIES = 32
MAX_TAINTS = 16
EFFECTS = ("None", "NoSchedule", "NoExecute")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
# 1.34 (pkg/apis/resource/validation of the 1.34 release)
MAX_SHARED_COUNTERS_1_34 = 32
MAX_DEVICE_COUNTERS_1_34 = 1024


def _device_errors(d: Mapping[str, Any]) -> list[str]:
    name = d.get("name", "")
    errors = []
    if not DNS_LABEL.match(name):
        errors.append(f"{name!r}: must be a DNS label")
    if len(d.get("attributes") or {}) + len(d.get("capacity") or {}) > 32:
        errors.append(f"{name}: the total number of attributes and capacities must not exceed 32")
    taints = d.get("taints") or []
    if len(taints) > MAX_TAINTS:
        errors.append(f"{name}: must have at most {MAX_TAINTS} taints")
    for t in taints:
        if t.get("effect") not in EFFECTS or not t.get("key"):
            errors.append(f"{name}: taint {t}: key and a known effect are required")
        if not LABEL_VALUE.match(t.get("value", "")) or len(t.get("value", "")) > 63:
            errors.append(f"{name}: taint value {t.get('value')!r} must be a label value")
    consumes = d.get("consumesCounters") or []
    if len(consumes) > MAX_CONSUMPTIONS:
        errors.append(f"{name}: must have at most {MAX_CONSUMPTIONS} consumesCounters")
    if len({c["counterSet"] for c in consumes}) != len(consumes):
        errors.append(f"{name}: duplicate counterSet in consumesCounters")
    for c in consumes:
        if not c.get("counters") or len(c["counters"]) > MAX_COUNTERS_PER_CONSUMPTION:
            errors.append(f"{name}: 1 to {MAX_COUNTERS_PER_CONSUMPTION} counters per counterSet")
    return errors


def errors_1_37(spec: Mapping[str, Any]) -> list[str]:
    """What a 1.37 API server refuses in a slice's devices and counters."""
    errors = []
    if "devices" in spec and "sharedCounters" in spec:
        errors.append(
            'spec: Invalid value: "": only one of `sharedCounters` or `devices` is allowed'
        )
    devices = spec.get("devices") or []
    advanced = any(d.get("consumesCounters") or d.get("taints") for d in devices)
    limit = MAX_DEVICES_ADVANCED if advanced else MAX_DEVICES
    if len(devices) > limit:
        errors.append(f"spec.devices: must have at most {limit} items")
    if len({d["name"] for d in devices}) != len(devices):
        errors.append("spec.devices: duplicate names")
    for d in devices:
        errors.extend(_device_errors(d))
    sets = spec.get("sharedCounters") or []
    if len(sets) > MAX_COUNTER_SETS:
        errors.append(f"spec.sharedCounters: must have at most {MAX_COUNTER_SETS} items")
    if len({s["name"] for s in sets}) != len(sets):
        errors.append("spec.sharedCounters: duplicate names")
    for s in sets:
        if not DNS_LABEL.match(s["name"]):
            errors.append(f"counter set {s['name']!r}: must be a DNS label")
        if not s.get("counters") or len(s["counters"]) > MAX_COUNTERS_PER_SET:
            errors.append(f"counter set {s['name']}: 1 to {MAX_COUNTERS_PER_SET} counters")
    return errors


def errors_1_34(spec: Mapping[str, Any]) -> list[str]:
    """What a 1.34 API server with DRAPartitionableDevices on refuses: counters consumed from
    another slice among them."""
    errors = []
    devices = spec.get("devices") or []
    sets = {c["name"]: set(c["counters"]) for c in spec.get("sharedCounters") or []}
    consuming = [d for d in devices if d.get("consumesCounters")]
    limit = MAX_DEVICES_ADVANCED if consuming else MAX_DEVICES
    if len(devices) > limit:
        errors.append(f"spec.devices: must have at most {limit} items")
    if len({d["name"] for d in devices}) != len(devices):
        errors.append("spec.devices: duplicate names")
    if sum(len(c) for c in sets.values()) > MAX_SHARED_COUNTERS_1_34:
        errors.append("spec.sharedCounters: the total number of shared counters must not exceed 32")
    used = 0
    for d in consuming:
        entries = sum(len(c["counters"]) for c in d["consumesCounters"])
        used += entries
        if entries > MAX_COUNTERS_PER_CONSUMPTION:
            errors.append(f"{d['name']}: the total number of counters must not exceed 32")
        for c in d["consumesCounters"]:
            if c["counterSet"] not in sets:
                errors.append(
                    f"{d['name']}: must reference a counterSet defined in the ResourceSlice "
                    "sharedCounters"
                )
            elif set(c["counters"]) - sets[c["counterSet"]]:
                errors.append(f"{d['name']}: must reference a counter defined in the slice")
    if used > MAX_DEVICE_COUNTERS_1_34:
        errors.append("spec.devices: the total number of counters in devices must not exceed 1024")
    return errors


def pool_errors(specs: Iterable[Mapping[str, Any]]) -> list[str]:
    """What makes the scheduler call a pool invalid (its slices of one generation)."""
    specs = list(specs)
    errors = []
    names = [d["name"] for s in specs for d in s.get("devices") or []]
    if len(set(names)) != len(names):
        errors.append("duplicate device names in the pool")
    sets: dict[str, set[str]] = {}
    for s in specs:
        for cs in s.get("sharedCounters") or []:
            if cs["name"] in sets:
                errors.append(f"duplicate counter set name {cs['name']}")
            sets[cs["name"]] = set(cs["counters"])
    for s in specs:
        for d in s.get("devices") or []:
            for c in d.get("consumesCounters") or []:
                if c["counterSet"] not in sets:
                    errors.append(f"{d['name']}: counter set {c['counterSet']} not found")
                elif set(c["counters"]) - sets[c["counterSet"]]:
                    errors.append(f"{d['name']}: counter not found in {c['counterSet']}")
    counts = {s["pool"]["resourceSliceCount"] for s in specs if "pool" in s}
    if counts and counts != {len(specs)}:
        errors.append(f"resourceSliceCount {counts} for {len(specs)} slices")
    return errors
