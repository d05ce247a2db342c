"""What the chart tests of the DRA driver share: values that turn it on, and its objects."""

from chartlib import merge, one, render

DRA_LABEL = {"neuron.k8s.local/dra": "true"}
# Beside the device plugin, which then needs dra.nodeSelector.
ON = {"enabled": True, "nodeSelector": DRA_LABEL}
ALONE = {
    "devicePlugin": {"enabled": False},
    "extender": {"enabled": False},
    "scheduler": {"enabled": False},
}
FAKE_ENV = {
    "NEURON_DRA_FAKE_INSTANCE_TYPE",
    "NEURON_DRA_FAKE_INSTANCE_TYPE_LABEL",
    "NEURON_DRA_FAKE_HEALTH_FILE",
}
# Real mode's host paths (hostDevices): test_chart_host_devices.py.
HOST_ENV = {
    "NEURON_DRA_DEV_ROOT",
    "NEURON_DRA_SYSFS_ROOT",
    "NEURON_DRA_KERNEL_MESSAGES",
    "NEURON_DRA_HARDWARE_ERROR_STATE",
}


def with_dra(block=None, **others):
    """Render with the DRA driver on (beside the device plugin) and `block` merged into `dra`."""
    return render({"dra": merge(ON, block or {}), **others})


def daemonset(block=None, **others):
    return one(with_dra(block, **others), "DaemonSet", "dra")


def fake(**settings):
    return daemonset({"fake": {"enabled": True, **settings}})


def dra_objects(objs):
    return [o for o in objs if o["metadata"]["labels"].get("app.kubernetes.io/component") == "dra"]
