"""CDI spec files, one per prepared claim: the container runtime (containerd with CDI enabled)
reads them from the CDI root and applies each device's containerEdits to the containers that
use the claim. One CDI device per request: NEURON_RT_VISIBLE_CORES for its cores and, in real
mode, the /dev/neuronN nodes of its devices. A claim of several requests also gets one device
for the whole claim, named by the claim's UID alone, with the union of the cores: CDI applies
env by key, the last value winning, so the kubelet lists it after the requests' devices for a
container that uses the whole claim (prepare.py). Files are written atomically (rename)."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass

from neuron_k8s.pods import visible_cores_env

CDI_VERSION = "0.6.0"
CLASS = "claim"


@dataclass(frozen=True)
class Edit:
    request: str  # "": the whole claim
    cores: tuple[int, ...]
    device_nodes: tuple[str, ...] = ()
    lnc: int | None = None


class CdiSpecs:
    def __init__(self, root: str, driver: str) -> None:
        self.root = root
        self.kind = f"{driver}/{CLASS}"
        self._prefix = driver.replace("/", "_")

    def path(self, claim_uid: str) -> str:
        return os.path.join(self.root, f"{self._prefix}-{claim_uid}.json")

    def device_id(self, claim_uid: str, request: str) -> str:
        return f"{self.kind}={self._device(claim_uid, request)}"

    @staticmethod
    def _device(claim_uid: str, request: str) -> str:
        return f"{claim_uid}-{request}" if request else claim_uid

    def write(self, claim_uid: str, edits: Sequence[Edit]) -> None:
        devices = []
        for edit in edits:
            env = [f"NEURON_RT_VISIBLE_CORES={visible_cores_env(edit.cores)}"]
            if edit.lnc is not None:
                env.append(f"NEURON_LOGICAL_NC_CONFIG={edit.lnc}")
            container_edits: dict[str, object] = {"env": env}
            if edit.device_nodes:
                container_edits["deviceNodes"] = [{"path": p} for p in edit.device_nodes]
            devices.append(
                {"name": self._device(claim_uid, edit.request), "containerEdits": container_edits}
            )
        spec = {"cdiVersion": CDI_VERSION, "kind": self.kind, "devices": devices}
        os.makedirs(self.root, exist_ok=True)
        path = self.path(claim_uid)
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            json.dump(spec, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def remove(self, claim_uid: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path(claim_uid))

    def claims(self) -> set[str]:
        """UIDs of the claims that have a spec file here."""
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return set()
        head, tail = f"{self._prefix}-", ".json"
        return {n[len(head) : -len(tail)] for n in names if n.startswith(head) and n.endswith(tail)}
