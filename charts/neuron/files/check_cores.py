"""helm test check: the pod got a contiguous set of Neuron cores of the size it asked for.

Reads NEURON_RT_VISIBLE_CORES (global core indices, comma-separated), NEURON_TEST_RESOURCE and
NEURON_TEST_COUNT; prints what it got and exits non-zero when the set is wrong.
"""

import os
import sys


def check(raw, resource, count):
    """Return an error sentence, or None when `raw` is a valid answer to the request."""
    if raw is None or not raw.strip():
        return "NEURON_RT_VISIBLE_CORES is not set or empty"
    try:
        cores = [int(part) for part in raw.split(",")]
    except ValueError:
        return f"NEURON_RT_VISIBLE_CORES={raw!r} is not a comma-separated list of integers"
    ordered = sorted(cores)
    if ordered != list(range(ordered[0], ordered[0] + len(ordered))) or ordered[0] < 0:
        return f"cores {cores} are not one contiguous block of distinct indices"
    if resource.endswith("/neuroncore") and len(cores) != count:
        return f"asked for {count} cores, got {len(cores)}: {cores}"
    if resource.endswith("/neuron") and (len(cores) < count or len(cores) % count):
        return f"asked for {count} whole devices, got {len(cores)} cores: {cores}"
    return None


def main():
    raw = os.environ.get("NEURON_RT_VISIBLE_CORES")
    resource = os.environ.get("NEURON_TEST_RESOURCE", "aws.amazon.com/neuroncore")
    count = int(os.environ.get("NEURON_TEST_COUNT", "1"))
    print(f"asked for {resource}: {count}; NEURON_RT_VISIBLE_CORES={raw!r}")
    error = check(raw, resource, count)
    if error:
        print(f"FAIL: {error}")
        return 1
    print("OK: contiguous Neuron cores allocated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
