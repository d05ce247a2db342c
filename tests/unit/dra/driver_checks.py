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
