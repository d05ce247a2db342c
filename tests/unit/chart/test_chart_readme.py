"""The chart README's "What it installs" (README.md.gotmpl, rendered by scripts/chart-docs.sh)
names every kind of object the chart renders (issue 21: it listed a scheduler ClusterRole that
does not exist and left out the NetworkPolicies, Secrets, admission policies and more)."""

import re

import pytest
from chartlib import CHART, render

CASES = {
    "aws": ({}, "aws"),
    "neuron-k8s": ({}, "neuron-k8s"),
    "everything": (
        {
            "createNamespace": True,
            "namespaceOverride": "accel",
            "dra": {
                "enabled": True,
                "nodeSelector": {"neuron.k8s.local/dra": "true"},
                "corePartitions": {"enabled": True},
            },
            "scheduler": {"replicas": 2},
            "extender": {"tls": {"mode": "cert-manager"}},
            "metrics": {"serviceMonitor": {"enabled": True}},
        },
        "neuron-k8s",
    ),
    "pod-monitors": ({"metrics": {"podMonitor": {"enabled": True}}}, "neuron-k8s"),
    "dra-alone": (
        {
            "devicePlugin": {"enabled": False},
            "extender": {"enabled": False},
            "scheduler": {"enabled": False},
            "dra": {"enabled": True},
        },
        "neuron-k8s",
    ),
}


def what_it_installs() -> str:
    text = (CHART / "README.md").read_text()
    return text.split("## What it installs", 1)[1].split("\n## ", 1)[0]


@pytest.mark.parametrize("case", sorted(CASES))
def test_what_it_installs_names_every_kind_rendered(case):
    values, implementation = CASES[case]
    kinds = {o["kind"] for o in render(values, implementation=implementation)}
    section = what_it_installs()
    missing = [k for k in kinds if not re.search(rf"\b{k}s?\b", section)]
    assert sorted(missing) == []


def test_what_it_installs_gives_the_scheduler_no_cluster_role():
    (row,) = [line for line in what_it_installs().splitlines() if "`scheduler`" in line]
    assert "ClusterRole," not in row and "ClusterRole |" not in row
