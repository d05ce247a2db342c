"""What the DRA driver tests read back: its CDI specs, its pool generation, its metrics and its
HTTP endpoints."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from dra_harness import NODE, Dirs
from fake_api import FakeApi
from neuron_k8s.dra.driver import Driver

StartDriver = Callable[..., Driver]


def cdi_file(dirs: Dirs, claim: dict[str, Any]) -> str:
    return os.path.join(dirs.cdi, f"neuron.aws.com-{claim['metadata']['uid']}.json")


def cdi_env(dirs: Dirs, claim: dict[str, Any]) -> dict[str, list[str]]:
    """The env of each CDI device of a claim's spec, by device name."""
    with open(cdi_file(dirs, claim)) as f:
        spec = json.load(f)
    return {d["name"]: d["containerEdits"]["env"] for d in spec["devices"]}


def container_env(dirs: Dirs, *uses: tuple[Any, dict[str, Any], str]) -> dict[str, str]:
    """The env a container ends with, built as the kubelet and the container runtime build it.
    `uses` are the container's claims in the pod's order: (NodePrepareResources response,
    claim, the request it names or "" for the whole claim). The kubelet passes the CDI IDs of
    the claim's answered devices whose request names include that request (every device's for
    the whole claim: ClaimInfo.cdiDevicesAsList), in order; containerd drops repeats; CDI then
    applies each device's env in that order, a later value of a key replacing an earlier one
    (runtime-tools' addEnv, from ContainerEdits.Apply)."""
    ids: list[str] = []
    for response, claim, request in uses:
        for d in response.claims[claim["metadata"]["uid"]].devices:
            if not request or not d.request_names or request in d.request_names:
                ids.extend(i for i in d.cdi_device_ids if i not in ids)
    edits: dict[str, list[str]] = {}
    for name in os.listdir(dirs.cdi):
        with open(os.path.join(dirs.cdi, name)) as f:
            spec = json.load(f)
        for device in spec["devices"]:
            edits[f"{spec['kind']}={device['name']}"] = device["containerEdits"].get("env", [])
    env: dict[str, str] = {}
    for cdi_id in ids:
        for entry in edits[cdi_id]:
            key, value = entry.split("=", 1)
            env[key] = value
    return env


def generation(api: FakeApi) -> int:
    (gen,) = {s["spec"]["pool"]["generation"] for s in api.node_slices(NODE)}
    return int(gen)


def metric(driver: Driver, name: str, **labels: str) -> float:
    return driver.metrics.registry.get_sample_value(name, labels) or 0.0


def http_get(driver: Driver, path: str) -> tuple[int, str]:
    assert driver.http is not None
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{driver.http.port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
