"""The kind nodes' imitation of the Neuron driver (cluster/neurondriver.py) is read by the
components' own real discovery exactly as a real host of that instance type would be: the
scripts are run here, into a directory, and the product's code reads the result (as root,
which mknod needs, as CI and the harness run)."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from neuron_k8s.deviceplugin.discovery_real import RealDiscovery
from neuron_k8s.hostdevices import core_count, dmi_instance_type, footprint
from neuron_k8s.kernelmessages import parse_line
from neuron_k8s.topology import INSTANCE_TYPES, Rule

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "cluster"))
import neurondriver  # noqa: E402


def sh(script: str) -> None:
    subprocess.run(["sh", "-c", script], check=True)


def planted(tmp_path: Path, instance_type: str) -> tuple[str, str]:
    sh(neurondriver.plant_script(instance_type, root=str(tmp_path)))
    return str(tmp_path / "dev"), str(tmp_path) + neurondriver.SYSFS


@pytest.mark.parametrize("instance_type", sorted(INSTANCE_TYPES))
def test_a_planted_node_is_discovered_as_its_instance_type(
    tmp_path: Path, instance_type: str
) -> None:
    dev, sysfs = planted(tmp_path, instance_type)
    devices, cores, _ = INSTANCE_TYPES[instance_type]
    found = footprint(dev, sysfs)
    assert found.nodes == found.sysfs == frozenset(range(devices))
    assert dmi_instance_type(sysfs) == instance_type
    assert core_count(sysfs, devices - 1) == cores
    # Without the label, from the files alone (DMI names the type).
    discovery = RealDiscovery(dev, sysfs)
    inventory = discovery.discover()
    assert inventory.shape.devices == devices
    assert discovery.present(inventory) == frozenset(range(devices))


def test_device_nodes_are_character_devices_a_container_can_open(tmp_path: Path) -> None:
    dev, _ = planted(tmp_path, "inf2.xlarge")
    st = os.stat(os.path.join(dev, "neuron0"))
    assert stat.S_ISCHR(st.st_mode)
    assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == neurondriver.NULL_DEVICE
    with open(os.path.join(dev, "neuron0"), "rb") as f:
        assert f.read(1) == b""


def test_a_removed_device_is_missing_and_a_restored_one_back(tmp_path: Path) -> None:
    dev, sysfs = planted(tmp_path, "trn1.32xlarge")
    discovery = RealDiscovery(dev, sysfs, instance_type="trn1.32xlarge")
    sh(neurondriver.remove_script(15, root=str(tmp_path)))
    inventory = discovery.discover()
    assert inventory.shape.devices == 16 and inventory.shape.rule is Rule.ALIGNED
    assert discovery.present(inventory) == frozenset(range(15))
    sh(neurondriver.restore_script(15, root=str(tmp_path)))
    assert discovery.present(inventory) == frozenset(range(16))


def test_an_unplanted_node_has_no_footprint_but_keeps_the_mounted_directories(
    tmp_path: Path,
) -> None:
    dev, sysfs = planted(tmp_path, "inf2.48xlarge")
    sh(neurondriver.unplant_script(root=str(tmp_path)))
    assert not footprint(dev, sysfs).found
    assert os.path.isdir(sysfs)
    assert (tmp_path.joinpath(neurondriver.KERNEL_MESSAGES.lstrip("/"))).read_text() == ""


def test_replanting_keeps_present_device_nodes_and_drops_extra_ones(tmp_path: Path) -> None:
    dev, _ = planted(tmp_path, "trn1.32xlarge")
    before = os.stat(os.path.join(dev, "neuron3")).st_ino
    planted(tmp_path, "inf2.48xlarge")
    assert os.stat(os.path.join(dev, "neuron3")).st_ino == before
    assert footprint(dev, str(tmp_path) + neurondriver.SYSFS).nodes == frozenset(range(12))


def test_an_error_line_is_appended_to_the_kernel_message_file(tmp_path: Path) -> None:
    kmsg = tmp_path.joinpath(neurondriver.KERNEL_MESSAGES.lstrip("/"))
    kmsg.parent.mkdir(parents=True)
    sh(neurondriver.error_script(3, "DMA_ERROR", root=str(tmp_path)))
    sh(neurondriver.error_script(4, "HBM_UNCORRECTABLE_ERROR", root=str(tmp_path)))
    lines = kmsg.read_text().splitlines()
    assert lines == [
        neurondriver.error_line(3, "DMA_ERROR"),
        neurondriver.error_line(4, "HBM_UNCORRECTABLE_ERROR"),
    ]
    sh(neurondriver.clear_messages_script(root=str(tmp_path)))
    assert kmsg.read_text() == ""


def test_only_aws_error_kinds_are_written() -> None:
    with pytest.raises(SystemExit, match="none of"):
        neurondriver.error_line(3, "FOO_ERROR")


def test_an_unknown_instance_type_is_refused_with_the_known_ones() -> None:
    with pytest.raises(SystemExit, match=r"inf2\.48xlarge"):
        neurondriver.plant_script("p4d.24xlarge")


def test_trn1_devices_are_connected_as_a_4x4_torus_and_inf2_as_a_ring() -> None:
    torus = neurondriver.neighbours(16, torus=True)
    assert torus[0] == [1, 3, 4, 12] and all(len(n) == 4 for n in torus)
    assert all(d in torus[n] for d in range(16) for n in torus[d])
    assert neurondriver.neighbours(12, torus=False)[0] == [1, 11]
    assert neurondriver.neighbours(1, torus=False) == [[]]


@pytest.mark.parametrize("kind", neurondriver.HW_ERRORS)
def test_the_imitations_error_line_is_read_by_the_components_as_its_device_and_kind(
    kind: str,
) -> None:
    found = parse_line(neurondriver.error_line(3, kind))
    assert found is not None
    assert (found.kind, found.device) == (kind, 3)
