"""The DRA driver's DeviceClasses in the chart: AWS's whole-device class; core partitions
(`dra.corePartitions`: the driver's settings, the core-set and device-set classes, the
whole-device class narrowed to whole devices); the unhealthy devices' taint effect; the
extended resource the whole-device class serves
(`dra.extendedResourceName`); their refusals and notes."""

from chartlib import env_of, merge, notes, objects_of, one, render_error
from dralib import ON, with_dra

PARTS = {"corePartitions": {"enabled": True}}


def classes(objs):
    return {o["metadata"]["name"]: o["spec"] for o in objects_of(objs, "DeviceClass")}


def expression(spec):
    (selector,) = spec["selectors"]
    return selector["cel"]["expression"]


# ---- the whole-device class ----


def test_device_class_is_awss_and_selects_the_drivers_devices(dra):
    device_class = one(dra, "DeviceClass", "dra")
    assert device_class["apiVersion"] == "resource.k8s.io/v1"
    assert device_class["metadata"]["name"] == "neuron.aws.com"
    assert "namespace" not in device_class["metadata"]
    assert device_class["spec"] == {
        "selectors": [{"cel": {"expression": 'device.driver == "neuron.aws.com"'}}]
    }


def test_device_class_follows_the_driver_name():
    device_class = one(with_dra({"driverName": "neuron.example.com"}), "DeviceClass", "dra")
    assert device_class["metadata"]["name"] == "neuron.example.com"
    assert device_class["spec"]["selectors"][0]["cel"]["expression"] == (
        'device.driver == "neuron.example.com"'
    )


def test_device_class_can_be_left_to_another_owner():
    assert objects_of(with_dra({"deviceClasses": {"create": False}}), "DeviceClass") == []


# ---- core partitions ----


def test_core_partitions_are_off_by_default_with_one_device_class():
    assert list(classes(with_dra())) == ["neuron.aws.com"]


def test_turned_on_the_driver_is_told_so():
    env = env_of(one(with_dra(PARTS), "DaemonSet", "dra"))
    assert env["NEURON_DRA_CORE_PARTITIONS"] == "true"


def test_turned_on_a_second_class_selects_the_core_sets():
    spec = classes(with_dra(PARTS))["neuroncore.aws.com"]
    assert expression(spec) == (
        'device.driver == "neuron.aws.com" && '
        'device.attributes["neuron.aws.com"].resourceType == "neuron_cores"'
    )


def test_turned_on_the_drivers_class_selects_whole_devices_only():
    spec = classes(with_dra(PARTS))["neuron.aws.com"]
    assert expression(spec) == (
        'device.driver == "neuron.aws.com" && '
        'device.attributes["neuron.aws.com"].resourceType == "neuron_device"'
    )


def test_turned_on_a_third_class_selects_the_runs_of_adjacent_devices():
    spec = classes(with_dra(PARTS))["neurondevices.aws.com"]
    assert expression(spec) == (
        'device.driver == "neuron.aws.com" && '
        'device.attributes["neuron.aws.com"].resourceType == "neuron_devices"'
    )


def test_the_core_set_class_name_is_a_value():
    objs = with_dra({"corePartitions": {"enabled": True, "deviceClassName": "cores.example.com"}})
    assert set(classes(objs)) == {"neuron.aws.com", "cores.example.com", "neurondevices.aws.com"}


def test_the_device_set_class_name_is_a_value():
    objs = with_dra({"corePartitions": {"enabled": True, "deviceSetClassName": "runs.example.com"}})
    assert "runs.example.com" in classes(objs)


def test_a_device_set_class_named_like_another_class_is_refused_with_a_sentence():
    parts = {"enabled": True, "deviceSetClassName": "neuroncore.aws.com"}
    error = render_error({"dra": merge(ON, {"corePartitions": parts})})
    assert "give the device-set class a name of its own" in error


def test_the_core_set_sizes_are_powers_unless_set():
    env = env_of(one(with_dra(PARTS), "DaemonSet", "dra"))
    assert env["NEURON_DRA_CORE_SET_SIZES"] == "powers"
    parts = {"corePartitions": {"enabled": True, "coreSetSizes": "all"}}
    assert env_of(one(with_dra(parts), "DaemonSet", "dra"))["NEURON_DRA_CORE_SET_SIZES"] == "all"


def test_core_set_sizes_that_are_no_choice_fail_the_schema():
    error = render_error({"dra": merge(ON, {"corePartitions": {"coreSetSizes": "most"}})})
    assert "coreSetSizes" in error


# ---- the taint of unhealthy devices (dra.unhealthyTaintEffect) ----


def test_unhealthy_devices_are_tainted_noschedule_by_default():
    env = env_of(one(with_dra(), "DaemonSet", "dra"))
    assert env["NEURON_DRA_UNHEALTHY_TAINT_EFFECT"] == "NoSchedule"


def test_noexecute_is_passed_to_the_driver_when_asked_for():
    env = env_of(one(with_dra({"unhealthyTaintEffect": "NoExecute"}), "DaemonSet", "dra"))
    assert env["NEURON_DRA_UNHEALTHY_TAINT_EFFECT"] == "NoExecute"


def test_a_taint_effect_the_api_does_not_offer_fails_the_schema():
    error = render_error({"dra": merge(ON, {"unhealthyTaintEffect": "PreferNoSchedule"})})
    assert "unhealthyTaintEffect" in error


def test_the_classes_follow_the_driver_name():
    objs = with_dra({**PARTS, "driverName": "neuron.example.com"})
    assert 'device.driver == "neuron.example.com"' in expression(
        classes(objs)["neuroncore.aws.com"]
    )
    assert 'attributes["neuron.example.com"]' in expression(classes(objs)["neuron.example.com"])


def test_core_partitions_with_a_class_the_chart_does_not_own_are_refused_with_a_sentence():
    error = render_error({"dra": merge(ON, {**PARTS, "deviceClasses": {"create": False}})})
    assert "dra.corePartitions.enabled=true needs dra.deviceClasses.create=true" in error
    assert "would hand core sets to claims for whole devices" in error


def test_a_core_set_class_named_like_the_driver_is_refused_with_a_sentence():
    error = render_error(
        {
            "dra": merge(
                ON, {"corePartitions": {"enabled": True, "deviceClassName": "neuron.aws.com"}}
            )
        }
    )
    assert "give the core-set class a name of its own" in error


def test_a_core_set_class_name_that_is_no_dns_subdomain_fails_the_schema():
    error = render_error(
        {"dra": merge(ON, {"corePartitions": {"enabled": True, "deviceClassName": "Cores!"}})}
    )
    assert "deviceClassName" in error


# ---- the extended resource (dra.extendedResourceName) ----


def test_no_extended_resource_by_default():
    assert "extendedResourceName" not in classes(with_dra())["neuron.aws.com"]


def test_the_extended_resource_goes_on_the_whole_device_class_only():
    objs = with_dra({**PARTS, "extendedResourceName": "aws.amazon.com/neuron"})
    assert classes(objs)["neuron.aws.com"]["extendedResourceName"] == "aws.amazon.com/neuron"
    assert "extendedResourceName" not in classes(objs)["neuroncore.aws.com"]


def test_an_extended_resource_with_a_class_the_chart_does_not_own_is_refused_with_a_sentence():
    error = render_error(
        {
            "dra": merge(
                ON,
                {
                    "extendedResourceName": "aws.amazon.com/neuron",
                    "deviceClasses": {"create": False},
                },
            )
        }
    )
    assert "which the chart creates only with dra.deviceClasses.create=true" in error


def test_an_extended_resource_in_the_kubernetes_io_domain_is_refused_with_a_sentence():
    error = render_error({"dra": merge(ON, {"extendedResourceName": "kubernetes.io/neuron"})})
    assert "is in the kubernetes.io domain" in error


def test_an_extended_resource_without_a_domain_fails_the_schema():
    assert "extendedResourceName" in render_error(
        {"dra": merge(ON, {"extendedResourceName": "neuron"})}
    )


# ---- the notes ----


def test_the_notes_show_a_core_set_claim_when_partitions_are_on():
    text = notes({"dra": merge(ON, PARTS)})
    assert "DeviceClasses neuron.aws.com, neuroncore.aws.com and neurondevices.aws.com" in text
    assert "deviceClassName neuroncore.aws.com, count 1" in text
    assert 'device.attributes["neuron.aws.com"].coreCount == 2' in text
    assert "neuroncore.aws.com" not in notes({"dra": ON})


def test_the_notes_name_the_extended_resource_when_it_is_set():
    text = notes({"dra": merge(ON, {"extendedResourceName": "aws.amazon.com/neuron"})})
    assert (
        "Pods that ask for aws.amazon.com/neuron in their resources and land on a DRA node" in text
    )
    assert "DRAExtendedResource" not in notes({"dra": ON})
