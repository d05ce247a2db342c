"""Preparing and unpreparing claims, the core of the kubelet's DRA calls: read the claim's
allocation from the watch cache, write one CDI spec for it, record it in the checkpoint, and
answer with the devices and their CDI IDs. Both calls are idempotent, and a restarted driver
answers from its checkpoint. docs/dra.md."""

from __future__ import annotations

import os
import threading

from neuron_k8s.deviceplugin.discovery import Inventory
from neuron_k8s.logs import get_logger

from .cdi import CdiSpecs, Edit
from .checkpoint import Checkpoint, Prepared, PreparedDevice
from .claimcache import ClaimCache
from .claims import (
    ClaimError,
    claim_cores,
    mapped_claim_error,
    requests,
    spanned_devices,
    visible_cores,
)

log = get_logger("dra.prepare")

# The request name of the answer's entry that carries the whole claim's CDI device. The kubelet
# gives a container the CDI IDs of the entries naming the request it references, or of every
# entry when it references the whole claim; no request can have this name (not a DNS label),
# so only a container that references the whole claim gets that device, and last.
WHOLE_CLAIM = "<claim>"


class Preparer:
    def __init__(
        self,
        driver: str,
        node: str,
        inventory: Inventory,
        claims: ClaimCache,
        cdi: CdiSpecs,
        checkpoint: Checkpoint,
        wait_for_claim: float = 10.0,
    ) -> None:
        self.driver = driver
        self.node = node
        self.inventory = inventory
        self._claims = claims
        self._cdi = cdi
        self._checkpoint = checkpoint
        self._wait = wait_for_claim
        # One claim at a time: the kubelet may call again for a claim still being prepared.
        self._lock = threading.Lock()

    def _done(self, uid: str) -> Prepared | None:
        done = self._checkpoint.get(uid)
        return done if done is not None and os.path.exists(self._cdi.path(uid)) else None

    def prepare(self, namespace: str, name: str, uid: str) -> Prepared:
        # Waiting for the watch happens outside the lock: a claim it has not seen yet must not
        # hold up the other pods' claims.
        claim = self._claims.wait(uid, self._wait) if self._done(uid) is None else None
        with self._lock:
            done = self._done(uid)
            if done is not None:
                return done
            claim = claim or self._claims.wait(uid, 0)  # unprepared meanwhile: read it again
            if claim is None:
                raise ClaimError(
                    f"claim {namespace}/{name} ({uid}) is not allocated, or not seen by the "
                    f"driver's watch within {self._wait:.0f} s"
                )
            shape = self.inventory.shape
            edits, prepared = [], []
            reqs = requests(claim, self.driver, self.node)
            refused = mapped_claim_error(shape, claim, reqs)
            if refused:
                raise ClaimError(f"claim {namespace}/{name}: {refused}")
            for req in reqs:
                cores = visible_cores(shape, req)
                nodes = tuple(self.inventory.nodes_for(spanned_devices(shape, req)))
                edits.append(Edit(req.name, tuple(cores), nodes, req.lnc))
                cdi_id = self._cdi.device_id(uid, req.name)
                # The request's one CDI device goes on its first device only: the kubelet
                # passes the runtime every ID of the devices a container uses.
                for k, device in enumerate(req.device_names):
                    ids = (cdi_id,) if k == 0 else ()
                    prepared.append(PreparedDevice(req.name, device, ids))
            if len(reqs) > 1:
                try:
                    cores, lnc = claim_cores(shape, reqs)
                except ClaimError as err:
                    raise ClaimError(f"claim {namespace}/{name}: {err}") from None
                edits.append(Edit("", tuple(cores), (), lnc))
                whole = (self._cdi.device_id(uid, ""),)
                prepared.append(PreparedDevice(WHOLE_CLAIM, prepared[0].device, whole))
            self._warn_if_shared(uid, prepared)
            self._cdi.write(uid, edits)
            record = Prepared(namespace, name, self.node, tuple(prepared))
            self._checkpoint.put(uid, record)
            log.info(
                "claim prepared",
                claim=f"{namespace}/{name}",
                uid=uid,
                devices=[d.device for d in prepared],
                cores={e.request or WHOLE_CLAIM: list(e.cores) for e in edits},
            )
            return record

    def unprepare(self, uid: str) -> None:
        with self._lock:
            self._cdi.remove(uid)
            self._checkpoint.drop(uid)
            log.info("claim unprepared", uid=uid)

    def _warn_if_shared(self, uid: str, devices: list[PreparedDevice]) -> None:
        """The scheduler never allocates a device twice; a record that says otherwise is one
        the kubelet never unprepared, and is worth a line in the log (not a refusal)."""
        mine = {d.device for d in devices}
        for other in self._checkpoint.uids() - {uid}:
            record = self._checkpoint.get(other)
            shared = mine & {d.device for d in record.devices} if record else set()
            if shared:
                log.warning(
                    "devices also recorded for another claim",
                    uid=uid,
                    other=other,
                    devices=sorted(shared),
                )
