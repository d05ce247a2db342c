#!/usr/bin/env python3
"""A soak on the kind cluster of cluster/harness.py: pods of every shape the project accepts
are created and deleted for a bounded time while a fault is injected every minute; then
everything is deleted and the figures printed. `python tests/soak/soak.py --help`."""

from __future__ import annotations

import random
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from soak_cluster import CONTROL_PLANE, DRA_LABEL, INSTANCE_TYPE, NEURON, NEURONCORE, Kube
from soak_faults import Schedule, inject
from soak_options import parse
from soak_shapes import DRIVER, SHAPES, TEMPLATES, Shape, claim_template, with_image
from soak_tally import (
    Key,
    Tally,
    claim_cores,
    cores_of_ids,
    overlaps,
    parse_cores,
    refused_by_kubelet,
)

# Devices and cores per device of the kind workers' instance types.
NODE_SHAPES = {"inf2.48xlarge": (12, 2), "trn1.32xlarge": (16, 2)}
JOB_LIFE = 60.0  # a finished Job's pod stays a while: its IDs must not stay held
CHECK_EVERY = 5  # ticks between PodResources and claim comparisons


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


@dataclass
class Live:
    """A Pod or Job the soak made that it has not deleted yet."""

    kind: str
    shape: str
    node: str
    born: float
    ends: float


class Soak:
    def __init__(self, opts: Any, kube: Kube) -> None:
        self.o = opts
        self.kube = kube
        self.ns: str = opts.namespace
        self.tally = Tally()
        self.rng = random.Random(opts.seed)
        self.run_id = uuid.uuid4().hex[:4]
        self.live: dict[str, Live] = {}
        self.cores: dict[Key, tuple[int, ...]] = {}
        self.claim_checked: set[str] = set()
        self.stop = threading.Event()
        self.seq = 0
        self.plugin_nodes: list[str] = []
        self.dra_nodes: list[str] = []
        self.control_plane = ""
        self.cpd: dict[str, int] = {}
        self.capacity: dict[str, tuple[str, str]] = {}

    # --- setup --------------------------------------------------------------------------
    def discover(self) -> None:
        for n in self.kube.nodes():
            name, labels = n.metadata.name, n.metadata.labels or {}
            if CONTROL_PLANE in labels:
                self.control_plane = name
            kind = labels.get(INSTANCE_TYPE)
            if kind not in NODE_SHAPES:
                continue
            self.cpd[name] = NODE_SHAPES[kind][1]
            if labels.get(DRA_LABEL) == "true":
                self.dra_nodes.append(name)
            else:
                self.plugin_nodes.append(name)
                cap = n.status.capacity or {}
                self.capacity[name] = (cap.get(NEURON, "0"), cap.get(NEURONCORE, "0"))
        self.plugin_nodes.sort()
        self.dra_nodes.sort()
        if not (self.plugin_nodes and self.dra_nodes and self.control_plane):
            raise SystemExit("soak: no kind cluster with device-plugin and DRA workers found")
        say(f"device-plugin nodes {self.plugin_nodes}, DRA nodes {self.dra_nodes}")

    def setup(self) -> None:
        ns = self.o.chart_namespace
        if not self.wait("the chart's pods ready", lambda: self.kube.components_ready(ns), 180):
            raise SystemExit(
                f"soak: the chart's pods in namespace {ns} are not all ready (the e2e suite "
                "uninstalls the release at its end: NEURON_E2E_REUSE=1 cluster/harness.py up)"
            )
        self.kube.ensure_namespace(self.ns)
        self.kube.clear(self.ns, 120)
        for name in TEMPLATES:
            self.kube.create(self.ns, "ResourceClaimTemplate", claim_template(name))
        self.kube.start_probes(self.ns, self.plugin_nodes, self.o.image, 3.0)

        def fresh() -> bool:
            return all(
                self.kube.podresources(self.ns, n, 30) is not None for n in self.plugin_nodes
            )

        self.wait("the PodResources probes listing", fresh, 180)

    def wait(self, what: str, check: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return True
            time.sleep(2)
        say(f"gave up waiting for {what} after {timeout:.0f} s")
        return False

    # --- the run ------------------------------------------------------------------------
    def run(self) -> int:
        self.discover()
        self.setup()
        start = time.monotonic()
        end = start + self.o.minutes * 60
        faults = threading.Thread(target=self.faults, args=(start, end), daemon=True)
        faults.start()
        tick = 0
        try:
            while time.monotonic() < end:
                self.step(tick, time.monotonic())
                if tick % 15 == 0:
                    self.progress(time.monotonic() - start)
                tick += 1
                time.sleep(self.o.tick)
        finally:
            self.stop.set()
            faults.join()
            self.finish()
        print(self.tally.report(self.o.minutes), flush=True)
        return 0 if self.tally.ok() else 1

    def faults(self, start: float, end: float) -> None:
        schedule = Schedule(
            self.plugin_nodes, self.dra_nodes, self.control_plane, every=self.o.fault_every
        )
        done = 0
        while not self.stop.is_set() and time.monotonic() < end:
            if done < schedule.due(time.monotonic() - start):
                fault = schedule.fault(done)
                done += 1
                say(f"fault {done}: {fault.describe()}")
                try:
                    self.tally.stopped_plugin(fault.kind, fault.target, time.monotonic())
                    inject(self.kube, fault, self.o.hold)
                    self.tally.faults.append(fault.describe())
                except Exception as err:
                    self.tally.fault_errors.append(f"{fault.describe()}: {err}")
                    say(f"fault {done} failed: {err}")
            self.stop.wait(1)

    def step(self, tick: int, now: float) -> None:
        found = self.kube.pods(self.ns)
        if found is None:
            return  # the API is away (a paused control plane): try again next tick
        churn = [p for p in found if (p.metadata.labels or {}).get("soak") == "churn"]
        self.observe(churn)
        if tick % CHECK_EVERY == 0:
            self.check_podresources()
            self.check_claims(churn)
        self.expire(churn, now)
        if len(self.live) < self.o.max_pods:
            self.create(now)

    def progress(self, elapsed: float) -> None:
        bad = ", ".join(f"{k} {v}" for k, v in self.tally.bad().items() if v)
        say(
            f"{elapsed:4.0f} s: {len(self.live)} live, {len(self.tally.placed)} placed, "
            f"{len(self.tally.faults)} faults, {self.kube.errors} API errors"
            + (f"; BAD: {bad}" if bad else "")
        )

    # --- what the pods show ------------------------------------------------------------
    def observe(self, pods: list[Any]) -> None:
        held: dict[str, dict[Key, tuple[int, ...]]] = {}
        reads = 0
        for p in pods:
            name, st = p.metadata.name, p.status
            shape = (p.metadata.labels or {}).get("shape", "?")
            statuses = [*(st.init_container_statuses or []), *(st.container_statuses or [])]
            started = any(c.state and (c.state.running or c.state.terminated) for c in statuses)
            if st.phase in ("Running", "Succeeded") or started:
                self.tally.placed.setdefault(name, shape)
            seen = name in self.tally.refused or name in self.tally.refused_plugin_down
            if refused_by_kubelet(st.phase, st.reason) and not seen:
                node, now = p.spec.node_name, time.monotonic()
                self.tally.refuse(name, node, st.reason, st.message or "", now)
                say(f"refused by the kubelet: {name} on {node}: {st.reason}: {st.message}")
            for c in statuses:
                key = (self.ns, name, c.name)
                begun = c.state and (c.state.running or c.state.terminated)
                if key not in self.cores and begun and reads < 8:
                    reads += 1
                    self.read_cores(key)
                running = st.phase == "Running" and p.metadata.deletion_timestamp is None
                if running and c.state and c.state.running and key in self.cores:
                    held.setdefault(p.spec.node_name, {})[key] = self.cores[key]
        for pair in self.tally.twice.sample(overlaps(held)):
            say("cores given twice: " + " and ".join("/".join(k) for k in sorted(pair)))

    def read_cores(self, key: Key) -> None:
        log = self.kube.log(*key)
        line = next((ln for ln in (log or "").splitlines() if ln.startswith("CORES=")), None)
        if line is not None:
            self.cores[key] = parse_cores(line.removeprefix("CORES="))

    def check_podresources(self) -> None:
        for node in self.plugin_nodes:
            listing = self.kube.podresources(self.ns, node, 30)
            for path, ids in (listing or {}).items():
                ns, pod, container = path.split("/")
                key = (ns, pod, container)
                if ns == self.ns and key in self.cores:
                    want = cores_of_ids(ids, self.cpd[node])
                    self.compare(key, want, "podresources")

    def check_claims(self, pods: list[Any]) -> None:
        for p in pods:
            key = (self.ns, p.metadata.name, "c0")
            node = p.spec.node_name
            if node not in self.dra_nodes or key not in self.cores:
                continue
            if p.metadata.name in self.claim_checked or p.status.phase != "Running":
                continue
            st = p.status
            names = [s.resource_claim_name for s in st.resource_claim_statuses or []]
            extended = getattr(st, "extended_resource_claim_status", None)
            if extended is not None:
                names.append(extended.resource_claim_name)
            claims = [self.kube.claim(self.ns, n) for n in names if n]
            if not claims or any(c is None for c in claims):
                continue
            results = [
                r
                for c in claims
                if c is not None
                for r in (
                    ((c.get("status") or {}).get("allocation") or {}).get("devices") or {}
                ).get("results")
                or []
            ]
            self.claim_checked.add(p.metadata.name)
            self.compare(key, claim_cores(results, DRIVER, node, self.cpd[node]), "claim")

    def compare(self, key: Key, want: tuple[int, ...], source: str) -> None:
        before = len(self.tally.mismatches)
        self.tally.compare(key, self.cores[key], want, source)
        if len(self.tally.mismatches) > before:
            say("mismatch: " + self.tally.mismatches[key].line())

    # --- churn --------------------------------------------------------------------------
    def expire(self, pods: list[Any], now: float) -> None:
        for name, live in list(self.live.items()):
            if live.ends > now:
                continue
            self.note_if_never_ran(name, pods)
            self.kube.delete(self.ns, live.kind, name)
            del self.live[name]

    def note_if_never_ran(self, name: str, pods: list[Any]) -> None:
        """A Pod or Job (`name`) that ends with none of its pods ever started is noted with
        the last word on why."""
        mine = [
            p for p in pods if name in (p.metadata.name, (p.metadata.labels or {}).get("job-name"))
        ]
        if not any(p.metadata.name in self.tally.placed for p in mine):
            self.tally.never_ran[name] = self.why_pending(mine)

    @staticmethod
    def why_pending(pods: list[Any]) -> str:
        for p in pods:
            for c in p.status.conditions or []:
                if c.type == "PodScheduled" and c.status == "False":
                    return f"{c.reason}: {c.message}"
            for c in p.status.container_statuses or []:
                if c.state and c.state.waiting:
                    return f"{c.state.waiting.reason}: {c.state.waiting.message}"
        return f"{pods[0].status.phase}" if pods else "no pod"

    def create(self, now: float) -> None:
        shape: Shape = SHAPES[self.seq % len(SHAPES)]
        turn = self.seq // len(SHAPES)
        nodes = self.plugin_nodes if shape.path == "plugin" else self.dra_nodes
        node = nodes[(self.seq // 2) % len(nodes)]
        name = f"{shape.name}-{self.run_id}-{self.seq:04d}"
        self.seq += 1
        body = with_image(shape.build(name, node, turn, self.o.scheduler), self.o.image)
        if self.kube.create(self.ns, shape.kind, body):
            life = JOB_LIFE if shape.kind == "Job" else self.rng.uniform(20, 60)
            self.live[name] = Live(shape.kind, shape.name, node, now, now + life)
            self.tally.created[shape.name] += 1

    # --- the end ------------------------------------------------------------------------
    def finish(self) -> None:
        """Delete everything, then wait for every node's capacity to come back."""
        say("deleting the soak's pods; waiting for the capacity to come back")
        found = self.kube.pods(self.ns) or []
        self.observe([p for p in found if (p.metadata.labels or {}).get("soak") == "churn"])
        # Those made in the last minute had no fair chance (a fault may have just ended).
        now = time.monotonic()
        for name, live in self.live.items():
            if now - live.born > 60:
                self.note_if_never_ran(name, found)
        self.live.clear()
        if not self.kube.clear(self.ns, 180):
            say("soak pods still present after 180 s")
        back = self.wait("capacity back on every node", lambda: not self.not_back(), self.o.settle)
        self.tally.not_back = [] if back else self.not_back()

    def not_back(self) -> list[str]:
        out = []
        nodes = {n.metadata.name: n for n in self.kube.nodes()}
        for name, cap in self.capacity.items():
            node = nodes.get(name)
            alloc = (node.status.allocatable or {}) if node else {}
            now = (alloc.get(NEURON, "0"), alloc.get(NEURONCORE, "0"))
            if now != cap:
                out.append(f"{name}: allocatable neuron/neuroncore {now}, capacity {cap}")
        for name in self.dra_nodes:
            holding = self.kube.claims_holding(name)
            if holding is None or holding:
                out.append(f"{name}: claims still allocated: {holding}")
        return out


def main() -> int:
    opts = parse()
    if not Path(opts.kubeconfig).exists():
        raise SystemExit(
            f"soak: no kubeconfig at {opts.kubeconfig}: bring the kind cluster up first "
            "(NEURON_E2E_KEEP=1 tox -e e2e, or tox -e demo)"
        )
    kube = Kube(opts.kubeconfig)
    return Soak(opts, kube).run()


if __name__ == "__main__":
    sys.exit(main())
