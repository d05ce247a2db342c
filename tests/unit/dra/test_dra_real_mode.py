"""The DRA driver in real mode over a planted driver footprint (the same real discovery as the
device plugin): a node without the driver offers nothing and says so on the Node; a missing
device keeps the node's shape, tainted, until its device node appears."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from dra_harness import NODE, FakeApi, wait_until
from neuron_k8s.dra.driver import Driver
from neuron_k8s.nodeevents import DRIVER_NOT_FOUND

StartDriver = Callable[..., Driver]


def host(root: Path) -> dict[str, object]:
    (root / "dev").mkdir()
    (root / "sys").mkdir()
    return {
        "fake_instance_type_label": None,
        "fake_health_file": None,
        "dev_root": str(root / "dev"),
        "sysfs_root": str(root / "sys"),
    }


def plant(root: Path, devices: range) -> None:
    for d in devices:
        (root / "dev" / f"neuron{d}").symlink_to("/dev/null")  # a character device
        (root / "sys/devices/virtual/neuron_device" / f"neuron{d}").mkdir(parents=True)


def tainted(api: FakeApi) -> list[str]:
    return [
        d["name"] for s in api.node_slices(NODE) for d in s["spec"]["devices"] if d.get("taints")
    ]


def test_a_neuron_node_without_the_driver_offers_no_devices_and_posts_one_warning_event(
    start_driver: StartDriver, api: FakeApi, tmp_path: Path
) -> None:
    start_driver(**host(tmp_path))
    assert api.published_devices(NODE) == [] and len(api.node_slices(NODE)) == 1
    wait_until(lambda: len(api.events) == 1, 5, "the Event on the Node")
    (event,) = api.events
    assert (event["type"], event["reason"]) == ("Warning", DRIVER_NOT_FOUND)
    assert (event["involvedObject"]["name"], event["involvedObject"]["uid"]) == (
        NODE,
        f"uid-node-{NODE}",
    )


def test_a_driver_that_loads_after_start_makes_the_node_offer_its_instance_type(
    start_driver: StartDriver, api: FakeApi, tmp_path: Path
) -> None:
    start_driver(**host(tmp_path))
    plant(tmp_path, range(16))
    wait_until(lambda: len(api.published_devices(NODE)) == 16, 10, "16 devices offered")
    assert tainted(api) == []


def test_trn1_32xlarge_without_dev_neuron15_offers_16_devices_with_device_15_tainted(
    start_driver: StartDriver, api: FakeApi, tmp_path: Path
) -> None:
    overrides = host(tmp_path)
    plant(tmp_path, range(15))
    start_driver(**overrides)
    wait_until(lambda: tainted(api) == ["neurondevice15"], 10, "device 15 tainted")
    assert len(api.published_devices(NODE)) == 16
    (tmp_path / "dev/neuron15").symlink_to("/dev/null")
    wait_until(lambda: tainted(api) == [], 10, "device 15 untainted once it appears")
