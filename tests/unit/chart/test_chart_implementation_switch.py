"""Switching the device plugin between AWS's image and this project's (`aws` <-> `neuron-k8s`):
the DaemonSet replaces its pods node by node, so for the upgrade that switches it
`devicePlugin.switchingFrom` names the implementation still running, and the plugin's
ClusterRole keeps that implementation's rules beside the new ones (the union) until a later
upgrade clears the value; the plugin's admission policies, which know only this project's
writes, wait for it too. docs/migration.md ("Switching `aws` to `neuron-k8s`") gives the order."""

import pytest
from chartlib import merge, objects_of, one, render

# This project's image from a registry the nodes can pull from (the chart refuses one without).
PULLABLE = {
    block: {"image": {"repository": "registry.example.com/neuron-k8s"}}
    for block in ("devicePlugin", "extender")
}


def render_as(implementation: str, values: dict | None = None) -> list[dict]:
    return render(merge(PULLABLE, values or {}), implementation=implementation)


def rules(objs) -> set[tuple[str, str]]:
    role = one(objs, "ClusterRole", "device-plugin")
    return {
        (resource, verb)
        for rule in role["rules"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


@pytest.fixture(scope="module")
def alone() -> dict[str, set[tuple[str, str]]]:
    """Each implementation's rules, with no switch under way."""
    return {impl: rules(render_as(impl)) for impl in ("aws", "neuron-k8s")}


@pytest.mark.parametrize(("now", "before"), [("neuron-k8s", "aws"), ("aws", "neuron-k8s")])
def test_while_switching_the_plugins_role_holds_both_implementations_rules(now, before, alone):
    objs = render_as(now, {"devicePlugin": {"switchingFrom": before}})
    assert rules(objs) == alone[now] | alone[before]


def test_awss_plugin_needs_rules_that_this_projects_role_alone_lacks(alone):
    # Why the union matters: AWS's pods not yet replaced would lose these at the switch.
    lost = alone["aws"] - alone["neuron-k8s"]
    assert {("pods", "get"), ("pods", "update"), ("nodes", "list")} <= lost


def test_after_the_switch_the_role_narrows_to_one_implementation(alone):
    objs = render_as("neuron-k8s", {"devicePlugin": {"switchingFrom": ""}})
    assert rules(objs) == alone["neuron-k8s"]


def test_switching_from_the_implementation_already_running_changes_nothing(alone):
    objs = render_as("neuron-k8s", {"devicePlugin": {"switchingFrom": "neuron-k8s"}})
    assert rules(objs) == alone["neuron-k8s"]
    assert objects_of(objs, "ValidatingAdmissionPolicy", "device-plugin")


def test_the_plugins_admission_policies_wait_until_awss_pods_are_gone():
    switching = render_as("neuron-k8s", {"devicePlugin": {"switchingFrom": "aws"}})
    after = render_as("neuron-k8s")
    assert not objects_of(switching, "ValidatingAdmissionPolicy", "device-plugin")
    assert objects_of(after, "ValidatingAdmissionPolicy", "device-plugin")
