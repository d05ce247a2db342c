#!/usr/bin/env python3
"""An imitation of the Neuron driver's footprint on kind nodes, so that the device plugin and
the DRA driver run in real mode (no fake devices) on a machine without Neuron hardware
(docs/real-mode.md, "Proving it on kind").

On a node (a kind node is a privileged container; everything is done through `docker exec`)
it plants what the driver leaves on a real host:
- `/dev/neuronN`: character devices with the major and minor of /dev/null, so the kubelet and
  containerd hand them to containers (DeviceSpec, CDI deviceNodes) and a container can open
  them;
- a sysfs-shaped tree under IMITATION/sys (the chart's `hostDevices.sysfsPath`):
  `devices/virtual/neuron_device/neuronN/{core_count,connected_devices,neuron_coreK/}`,
  `class/neuron_device` linking to it, the DMI product name, the driver's module version;
- an empty kernel-message file IMITATION/kmsg (the chart's `hostDevices.kernelMessages`),
  where `error` writes a Neuron hardware-error line as the driver would print it;
- trn2's logical NeuronCore file when asked (`--lnc`).

It can take one device node away and give it back, take the whole footprint away (a node
whose driver did not load), and reset a node to a fresh boot's state. The directories the
chart mounts are never removed, only emptied: a hostPath mount keeps pointing at them.

    neurondriver.py plant [--node N]...        every labelled worker when no --node is given
    neurondriver.py remove --node N --device D
    neurondriver.py restore --node N --device D
    neurondriver.py error --node N --device D [--kind SRAM_UNCORRECTABLE_ERROR]
    neurondriver.py unplant --node N
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import ModuleType

from shell import env

IMITATION = "/var/lib/neuron-imitation"
SYSFS = f"{IMITATION}/sys"
KERNEL_MESSAGES = f"{IMITATION}/kmsg"
# Where the chart keeps the components' hardware-error record (hostDevices.stateDir).
STATE_FILE = "/var/lib/neuron-k8s/hardware-errors.json"
LNC_FILE = "/opt/aws/neuron/logical_nc_config"
NULL_DEVICE = (1, 3)  # major, minor of /dev/null: opens and reads like a device that is there
DRIVER_VERSION = "2.99.0-imitation"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
HW_ERRORS = (
    "SRAM_UNCORRECTABLE_ERROR",
    "NC_UNCORRECTABLE_ERROR",
    "HBM_UNCORRECTABLE_ERROR",
    "DMA_ERROR",
)
TOPOLOGY_PY = Path(__file__).resolve().parent.parent / "plugin-src/src/neuron_k8s/topology.py"


def _topology() -> ModuleType:
    """The project's own Neuron facts (plugin-src/.../topology.py, standard library only), so
    that the imitation and the components never disagree about a shape."""
    spec = importlib.util.spec_from_file_location("neuron_topology_facts", TOPOLOGY_PY)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through it
    spec.loader.exec_module(module)
    return module


def neighbours(devices: int, torus: bool) -> list[list[int]]:
    """connected_devices per device: a ring, or trn's 4x4 torus where there are 16."""
    if torus and devices == 16:
        out = []
        for d in range(16):
            row, col = divmod(d, 4)
            near = {row * 4 + (col + 1) % 4, row * 4 + (col - 1) % 4}
            near |= {((row + 1) % 4) * 4 + col, ((row - 1) % 4) * 4 + col}
            out.append(sorted(near - {d}))
        return out
    if devices == 1:
        return [[]]
    return [sorted({(d - 1) % devices, (d + 1) % devices} - {d}) for d in range(devices)]


def plant_script(instance_type: str, lnc: int | None = None, root: str = "") -> str:
    """The shell script that gives a node the footprint of `instance_type`'s driver, as a
    fresh boot leaves it: every device node present, no kernel message, no recorded error.
    `root` prefixes every path (tests plant into a directory)."""
    topo = _topology()
    if instance_type not in topo.INSTANCE_TYPES:
        known = ", ".join(sorted(topo.INSTANCE_TYPES))
        raise SystemExit(f"neurondriver: {instance_type!r} is no Neuron instance type ({known})")
    devices, cores, rule = topo.INSTANCE_TYPES[instance_type]
    sysfs = root + SYSFS
    base = f"{sysfs}/devices/virtual/neuron_device"
    lines = [
        "set -eu",
        *_empty_script(root, keep_devices=devices),
        f"mkdir -p {base} {sysfs}/class {sysfs}/devices/virtual/dmi/id {sysfs}/module/neuron",
        f"ln -sfn ../devices/virtual/neuron_device {sysfs}/class/neuron_device",
        f"echo {shlex.quote(instance_type)} > {sysfs}/devices/virtual/dmi/id/product_name",
        f"echo {DRIVER_VERSION} > {sysfs}/module/neuron/version",
    ]
    for device, near in enumerate(neighbours(devices, rule.value != "ring")):
        entry = f"{base}/neuron{device}"
        core_dirs = " ".join(f"{entry}/neuron_core{k}" for k in range(cores))
        lines += [
            f"mkdir -p {core_dirs}",
            f"echo {cores} > {entry}/core_count",
            f"echo {shlex.quote(', '.join(map(str, near)))} > {entry}/connected_devices",
            restore_script(device, root).strip(),
        ]
    if lnc is not None:
        lnc_file = root + LNC_FILE
        lines += [f"mkdir -p {os.path.dirname(lnc_file)}", f"echo {lnc} > {lnc_file}"]
    return "\n".join(lines) + "\n"


def _empty_script(root: str = "", keep_devices: int = 0) -> list[str]:
    """No footprint left, with the mounted directories themselves kept (emptied in place).
    Device nodes below `keep_devices` stay, so that replanting a running node does not make
    its devices flap unhealthy."""
    sysfs, dev = root + SYSFS, f"{root}/dev"
    return [
        f"mkdir -p {sysfs} {dev} {os.path.dirname(root + STATE_FILE)}",
        f"find {sysfs} -mindepth 1 -maxdepth 1 -exec rm -rf {{}} +",
        f"for d in {dev}/neuron[0-9] {dev}/neuron[0-9][0-9]; do",
        '  [ -e "$d" ] || continue',
        f'  [ "${{d#{dev}/neuron}}" -lt {int(keep_devices)} ] 2>/dev/null || rm -f "$d"',
        "done",
        f": > {root + KERNEL_MESSAGES}",
        f"rm -f {root + STATE_FILE} {root + STATE_FILE}.position {root + LNC_FILE}",
    ]


def unplant_script(root: str = "") -> str:
    return "\n".join(["set -eu", *_empty_script(root)]) + "\n"


def remove_script(device: int, root: str = "") -> str:
    """The device node goes (a device the driver lost); its sysfs entry stays."""
    return f"rm -f {root}/dev/neuron{int(device)}\n"


def restore_script(device: int, root: str = "") -> str:
    major, minor = NULL_DEVICE
    path = f"{root}/dev/neuron{int(device)}"
    return f"[ -c {path} ] || {{ rm -rf {path}; mknod -m 666 {path} c {major} {minor}; }}\n"


def error_line(device: int, kind: str, uptime: float = 4242.5) -> str:
    """A Neuron hardware-error kernel message as dmesg prints it: the `NEURON_HW_ERR=<kind>`
    AWS's node-problem-detector rules match, and the device it happened on."""
    if kind not in HW_ERRORS:
        raise SystemExit(f"neurondriver: {kind!r} is none of {', '.join(HW_ERRORS)}")
    return (
        f"[{uptime:12.6f}] neuron: NEURON_HW_ERR={kind} nd-id={int(device)} "
        "instance-id=i-0imitation0000000 action=reset-device"
    )


def error_script(device: int, kind: str, root: str = "") -> str:
    return f"echo {shlex.quote(error_line(device, kind))} >> {root + KERNEL_MESSAGES}\n"


def clear_messages_script(root: str = "") -> str:
    """The kernel-message file emptied, as after a reboot; the components' record stays."""
    return f": > {root + KERNEL_MESSAGES}\n"


def exec_on(node: str, script: str) -> str:
    """Run a script in a kind node's container; its output, or SystemExit with its error."""
    done = subprocess.run(
        ["docker", "exec", "-i", node, "sh", "-s"],
        input=script,
        text=True,
        capture_output=True,
        env=env(),
    )
    if done.returncode != 0:
        raise SystemExit(f"neurondriver: on {node}: {done.stderr.strip() or done.stdout}")
    return done.stdout


def labelled_workers(kubeconfig: str | None = None) -> dict[str, str]:
    """Node name -> instance type, for every node labelled with a Neuron instance type."""
    cmd = ["kubectl", "get", "nodes", "-o", "json"]
    if kubeconfig:
        cmd[1:1] = ["--kubeconfig", kubeconfig]
    listed = subprocess.run(cmd, check=True, text=True, capture_output=True, env=env())
    nodes = json.loads(listed.stdout)
    topo = _topology()
    out = {}
    for node in nodes["items"]:
        kind = (node["metadata"].get("labels") or {}).get(INSTANCE_TYPE_LABEL)
        if kind in topo.INSTANCE_TYPES:
            out[node["metadata"]["name"]] = kind
    return out


def plant(nodes: Iterable[str] = (), kubeconfig: str | None = None) -> dict[str, str]:
    """Plant every named node (default: every labelled one) with its label's footprint."""
    workers = labelled_workers(kubeconfig)
    chosen = list(nodes) or sorted(workers)
    for node in chosen:
        if node not in workers:
            raise SystemExit(f"neurondriver: {node} has no Neuron instance-type label")
        exec_on(node, plant_script(workers[node]))
        print(f"neurondriver: {node}: {workers[node]} driver footprint planted", flush=True)
    return {n: workers[n] for n in chosen}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("command", choices=["plant", "unplant", "remove", "restore", "error"])
    p.add_argument("--node", action="append", default=[], help="kind node (container) name")
    p.add_argument("--device", type=int, help="device index (remove, restore, error)")
    p.add_argument("--kind", default=HW_ERRORS[0], choices=HW_ERRORS, help="error kind")
    p.add_argument("--kubeconfig", default=None, help="default: the harness's cluster")
    args = p.parse_args(argv)
    if args.command == "plant":
        plant(args.node, args.kubeconfig)
        return 0
    if not args.node:
        p.error(f"{args.command} needs --node")
    if args.command != "unplant" and args.device is None:
        p.error(f"{args.command} needs --device")
    for node in args.node:
        script = {
            "unplant": lambda: unplant_script(),
            "remove": lambda: remove_script(args.device),
            "restore": lambda: restore_script(args.device),
            "error": lambda: error_script(args.device, args.kind),
        }[args.command]()
        exec_on(node, script)
    return 0


if __name__ == "__main__":
    sys.exit(main())
