"""Real mode of this project's device plugin and DRA driver (`hostDevices`, same values under
`devicePlugin` and `dra`): the host paths real discovery and the hardware-error reader need are
mounted and passed, and nothing of it in fake mode or with AWS's image."""

import pytest
from chartlib import container, env_of, mounts, pod_spec, render, render_error, volumes, workload
from dralib import ON

BLOCKS = ["devicePlugin", "dra"]
PREFIX = {"devicePlugin": "NEURON_DP_", "dra": "NEURON_DRA_"}
HOST_VOLUMES = {"host-dev", "host-sys", "kernel-messages", "neuron-state"}
FAKE = {
    "devicePlugin": {"fake": {"enabled": True, "instanceType": "trn1.32xlarge"}},
    "dra": {"fake": {"enabled": True, "instanceType": "trn1.32xlarge"}},
}


def daemonset(block, values=None, **others):
    """The block's DaemonSet, with the DRA driver beside the device plugin when it is `dra`."""
    settings = {**ON, **(values or {})} if block == "dra" else (values or {})
    objs = render({block: settings, **others})
    if block == "devicePlugin":
        return workload(objs, "devicePlugin")
    (found,) = [
        o for o in objs if o["kind"] == "DaemonSet" and o["metadata"]["name"] == "neuron-dra"
    ]
    return found


def host(block, **paths):
    return daemonset(block, {"hostDevices": paths})


def env(obj, block, name):
    return env_of(obj)[PREFIX[block] + name]


# ---- /dev ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("block", BLOCKS)
def test_the_hosts_dev_is_mounted_read_only_at_host_dev_and_is_the_dev_root(block):
    obj = daemonset(block)
    assert volumes(obj)["host-dev"]["hostPath"] == {"path": "/dev", "type": "Directory"}
    assert mounts(obj)["host-dev"] == {
        "name": "host-dev",
        "mountPath": "/host/dev",
        "readOnly": True,
    }
    assert env(obj, block, "DEV_ROOT") == "/host/dev"


@pytest.mark.parametrize("block", BLOCKS)
def test_dev_path_names_another_host_directory(block):
    obj = host(block, devPath="/var/lib/neuron-imitation/dev", kernelMessages="")
    assert volumes(obj)["host-dev"]["hostPath"]["path"] == "/var/lib/neuron-imitation/dev"
    assert env(obj, block, "DEV_ROOT") == "/host/dev"


@pytest.mark.parametrize("block", BLOCKS)
def test_neither_the_host_root_nor_run_is_mounted(block):
    paths = {
        v["hostPath"]["path"] for v in pod_spec(daemonset(block))["volumes"] if "hostPath" in v
    }
    assert not paths & {"/", "/run", "/var/run", "/sys"}


# ---- sysfs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("block", BLOCKS)
def test_no_sysfs_path_mounts_nothing_and_reads_the_containers_own_sys(block):
    obj = daemonset(block)
    assert "host-sys" not in volumes(obj)
    assert env(obj, block, "SYSFS_ROOT") == "/sys"


@pytest.mark.parametrize("block", BLOCKS)
def test_a_sysfs_path_is_mounted_read_only_at_host_sys_and_is_the_sysfs_root(block):
    obj = host(block, sysfsPath="/var/lib/neuron-imitation/sys")
    assert volumes(obj)["host-sys"]["hostPath"] == {
        "path": "/var/lib/neuron-imitation/sys",
        "type": "Directory",
    }
    assert mounts(obj)["host-sys"] == {
        "name": "host-sys",
        "mountPath": "/host/sys",
        "readOnly": True,
    }
    assert env(obj, block, "SYSFS_ROOT") == "/host/sys"


# ---- kernel messages -----------------------------------------------------------------------------


@pytest.mark.parametrize("block", BLOCKS)
def test_kmsg_under_dev_is_read_through_host_dev_by_a_privileged_container(block):
    obj = daemonset(block)  # the default, /dev/kmsg
    assert env(obj, block, "KERNEL_MESSAGES") == "/host/dev/kmsg"
    assert "kernel-messages" not in volumes(obj)
    security = container(obj)["securityContext"]
    assert security["privileged"] is True
    # The API refuses allowPrivilegeEscalation false beside privileged.
    assert "allowPrivilegeEscalation" not in security
    assert security["readOnlyRootFilesystem"] is True


@pytest.mark.parametrize("block", BLOCKS)
def test_a_kernel_message_file_elsewhere_mounts_its_directory_without_privilege(block):
    obj = host(block, kernelMessages="/var/lib/neuron-imitation/kmsg")
    assert env(obj, block, "KERNEL_MESSAGES") == "/host/kernel-messages/kmsg"
    assert volumes(obj)["kernel-messages"]["hostPath"] == {
        "path": "/var/lib/neuron-imitation",
        "type": "Directory",
    }
    assert mounts(obj)["kernel-messages"] == {
        "name": "kernel-messages",
        "mountPath": "/host/kernel-messages",
        "readOnly": True,
    }
    security = container(obj)["securityContext"]
    assert "privileged" not in security and security["allowPrivilegeEscalation"] is False


@pytest.mark.parametrize("block", BLOCKS)
def test_a_regular_file_under_dev_path_needs_no_privilege(block):
    obj = host(block, devPath="/var/lib/fake-dev", kernelMessages="/var/lib/fake-dev/kmsg")
    assert env(obj, block, "KERNEL_MESSAGES") == "/host/dev/kmsg"
    assert "kernel-messages" not in volumes(obj)
    assert "privileged" not in container(obj)["securityContext"]


@pytest.mark.parametrize("block", BLOCKS)
def test_no_kernel_messages_passes_the_reader_empty_without_privilege(block):
    obj = host(block, kernelMessages="")
    assert env(obj, block, "KERNEL_MESSAGES") == ""
    assert "kernel-messages" not in volumes(obj)
    assert "privileged" not in container(obj)["securityContext"]


# ---- hardware-error state ------------------------------------------------------------------------


@pytest.mark.parametrize("block", BLOCKS)
def test_the_state_directory_is_mounted_read_write_and_holds_the_hardware_errors(block):
    obj = daemonset(block)
    assert volumes(obj)["neuron-state"]["hostPath"] == {
        "path": "/var/lib/neuron-k8s",
        "type": "DirectoryOrCreate",
    }
    assert mounts(obj)["neuron-state"] == {
        "name": "neuron-state",
        "mountPath": "/var/lib/neuron-k8s",
    }
    assert env(obj, block, "HARDWARE_ERROR_STATE") == "/var/lib/neuron-k8s/hardware-errors.json"


@pytest.mark.parametrize("block", BLOCKS)
def test_no_state_directory_keeps_nothing(block):
    obj = host(block, stateDir="")
    assert "neuron-state" not in volumes(obj)
    assert env(obj, block, "HARDWARE_ERROR_STATE") == ""


# ---- none of it in fake mode or with AWS's image -------------------------------------------------


@pytest.mark.parametrize("block", BLOCKS)
def test_fake_mode_mounts_and_passes_nothing_of_the_host(block):
    obj = daemonset(block, FAKE[block])
    assert not HOST_VOLUMES & volumes(obj).keys()
    names = ("DEV_ROOT", "SYSFS_ROOT", "KERNEL_MESSAGES", "HARDWARE_ERROR_STATE")
    assert not {PREFIX[block] + n for n in names} & env_of(obj).keys()
    assert "privileged" not in container(obj)["securityContext"]


def test_awss_plugin_mounts_and_passes_nothing_of_it():
    obj = workload(render(implementation="aws"), "devicePlugin")
    assert not HOST_VOLUMES & volumes(obj).keys()
    assert not [n for n in env_of(obj) if n.startswith("NEURON_DP_")]
    assert "privileged" not in container(obj)["securityContext"]


# ---- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("key", ["devPath", "sysfsPath", "kernelMessages", "stateDir"])
def test_a_relative_path_is_refused(block, key):
    error = render_error({block: {**(ON if block == "dra" else {}), "hostDevices": {key: "x/y"}}})
    assert f'{block}.hostDevices.{key}="x/y" must be an absolute path on the node' in error


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("key", ["devPath", "sysfsPath", "kernelMessages", "stateDir"])
def test_a_path_going_up_is_refused(block, key):
    values = {**(ON if block == "dra" else {}), "hostDevices": {key: "/var/../etc/x"}}
    error = render_error({block: values})
    assert f'{block}.hostDevices.{key}="/var/../etc/x" must not go up with ".."' in error


@pytest.mark.parametrize("path", ["/kmsg", "/var/log/"])
def test_kernel_messages_must_name_a_file_below_a_directory(path):
    error = render_error({"devicePlugin": {"hostDevices": {"kernelMessages": path}}})
    assert "must name a file inside a directory other than /" in error


def test_real_mode_needs_a_dev_path():
    error = render_error({"devicePlugin": {"hostDevices": {"devPath": ""}}})
    assert "devicePlugin.hostDevices.devPath is empty, but real mode reads" in error


def test_fake_mode_needs_no_dev_path():
    values = {"devicePlugin": {**FAKE["devicePlugin"], "hostDevices": {"devPath": ""}}}
    assert "host-dev" not in volumes(workload(render(values), "devicePlugin"))
