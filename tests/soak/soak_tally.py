"""The soak's accounting, pure: what it saw of the pods, which cores were given twice, which
containers saw other cores than the kubelet or the claim says, and the closing report."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

# A container of a pod: (namespace, pod, container). Soak pods never reuse a name, so a key
# names one container for the whole run.
Key = tuple[str, str, str]

# Pod status reasons a kubelet gives when it refuses a pod at admission: the device manager's
# failures, and the resource fit of its own admission (OutOfaws.amazon.com/neuroncore, ...).
KUBELET_REFUSALS = ("UnexpectedAdmissionError",)
KUBELET_REFUSAL_PREFIX = "OutOf"


# The kubelet's own refusal while no device plugin of the resource is connected
# (devicemanager.ManagerImpl.devicesToAllocate, 1.34: a disconnected plugin's devices are all
# marked unhealthy at once, and a new plugin replaces them only once it registers). No plugin
# can close that window; it is counted apart when it follows a fault that stopped the node's
# plugin (a killed plugin pod, a restarted kubelet), and fails the run otherwise.
PLUGIN_DOWN_MESSAGES = ("no healthy devices present", "cannot allocate unregistered device")
PLUGIN_DOWN_FAULTS = ("device-plugin-killed", "kubelet-restarted")
PLUGIN_DOWN_WINDOW = 60.0  # seconds after such a fault in which the plugin may still be away


def refused_by_kubelet(phase: str | None, reason: str | None) -> bool:
    """Whether a pod's status says its kubelet refused it."""
    if phase != "Failed" or not reason:
        return False
    return reason in KUBELET_REFUSALS or reason.startswith(KUBELET_REFUSAL_PREFIX)


def parse_cores(value: str) -> tuple[int, ...]:
    """NEURON_RT_VISIBLE_CORES as printed: "0,1,2", or "2-3"; empty when none were given."""
    out: list[int] = []
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        first, _, last = part.partition("-")
        out.extend(range(int(first), int(last or first) + 1))
    return tuple(sorted(out))


def cores_of_ids(ids: Mapping[str, Iterable[int]], cores_per_device: int) -> tuple[int, ...]:
    """The cores the kubelet's device IDs stand for: aws.amazon.com/neuroncore IDs are cores,
    aws.amazon.com/neuron IDs are devices of `cores_per_device` cores."""
    cores: set[int] = set()
    for resource, values in ids.items():
        for i in values:
            if resource.endswith("/neuroncore"):
                cores.add(i)
            else:
                cores.update(range(i * cores_per_device, (i + 1) * cores_per_device))
    return tuple(sorted(cores))


def overlaps(held: Mapping[str, Mapping[Key, tuple[int, ...]]]) -> set[frozenset[Key]]:
    """The pairs of containers, on one node, whose cores overlap: `held` is node -> the running
    containers there and their cores."""
    pairs: set[frozenset[Key]] = set()
    for containers in held.values():
        owner: dict[int, Key] = {}
        for key, cores in sorted(containers.items()):
            for core in cores:
                other = owner.setdefault(core, key)
                if other != key:
                    pairs.add(frozenset((other, key)))
    return pairs


@dataclass
class Confirmed:
    """Something seen in `needed` samples in a row is confirmed: a status that lags one sample
    behind the kubelet is not a finding, a double allocation that lasts is."""

    needed: int = 2
    streak: dict[frozenset[Key], int] = field(default_factory=dict)
    found: set[frozenset[Key]] = field(default_factory=set)

    def sample(self, seen: set[frozenset[Key]]) -> set[frozenset[Key]]:
        """Record one sample; returns what it newly confirmed."""
        self.streak = {p: self.streak.get(p, 0) + 1 for p in seen}
        new = {p for p, n in self.streak.items() if n >= self.needed} - self.found
        self.found |= new
        return new


@dataclass(frozen=True)
class Mismatch:
    key: Key
    saw: tuple[int, ...]
    expected: tuple[int, ...]
    source: str  # "podresources" or "claim"

    def line(self) -> str:
        ns, pod, container = self.key
        return (
            f"{ns}/{pod}/{container} saw cores {list(self.saw)}, "
            f"{self.source} says {list(self.expected)}"
        )


@dataclass
class Tally:
    """Everything the soak counts over a run."""

    created: Counter[str] = field(default_factory=Counter)
    placed: dict[str, str] = field(default_factory=dict)  # pod -> its shape
    refused: dict[str, str] = field(default_factory=dict)  # pod -> reason: message
    # Refused by the kubelet's own rule while a fault had stopped the node's device plugin.
    refused_plugin_down: dict[str, str] = field(default_factory=dict)
    # node -> when (monotonic s) a fault stopped its device plugin
    plugin_stops: dict[str, list[float]] = field(default_factory=dict)
    faults: list[str] = field(default_factory=list)
    fault_errors: list[str] = field(default_factory=list)
    twice: Confirmed = field(default_factory=Confirmed)
    mismatches: dict[Key, Mismatch] = field(default_factory=dict)
    never_ran: dict[str, str] = field(default_factory=dict)  # pod -> last scheduling word
    not_back: list[str] = field(default_factory=list)  # nodes whose capacity did not return
    checked: Counter[str] = field(default_factory=Counter)  # comparisons made, by source

    def stopped_plugin(self, kind: str, node: str, when: float) -> None:
        """A fault of `kind` was injected on `node` at `when`."""
        if kind in PLUGIN_DOWN_FAULTS and node:
            self.plugin_stops.setdefault(node, []).append(when)

    def refuse(self, pod: str, node: str | None, reason: str, message: str, when: float) -> None:
        """A kubelet refused `pod`, as seen at `when`: a failure, unless it is the kubelet's
        refusal for a missing plugin shortly after a fault stopped that node's plugin."""
        why = f"{reason}: {message}"
        stops = self.plugin_stops.get(node or "", [])
        if any(m in message for m in PLUGIN_DOWN_MESSAGES) and any(
            0 <= when - t <= PLUGIN_DOWN_WINDOW for t in stops
        ):
            self.refused_plugin_down[pod] = why
        else:
            self.refused[pod] = why

    def compare(self, key: Key, saw: tuple[int, ...], expected: tuple[int, ...], src: str) -> None:
        """One comparison of what a container saw with what `src` says it was given."""
        self.checked[src] += 1
        if saw != expected and key not in self.mismatches:
            self.mismatches[key] = Mismatch(key, saw, expected, src)

    def bad(self) -> dict[str, int]:
        """The figures that must be zero."""
        by_source = Counter(m.source for m in self.mismatches.values())
        return {
            "pods refused by a kubelet": len(self.refused),
            "cores given twice (container pairs)": len(self.twice.found),
            "containers unlike PodResources": by_source["podresources"],
            "containers unlike their claim": by_source["claim"],
            "nodes whose allocatable did not return": len(self.not_back),
        }

    def ok(self) -> bool:
        return not any(self.bad().values())

    def report(self, minutes: float, limit: int = 10) -> str:
        shapes = Counter(self.placed.values())
        lines = [
            f"soak: {minutes:g} minutes",
            f"  pods created                    {sum(self.created.values())}"
            f"  ({_counts(self.created)})",
            f"  pods placed                     {len(self.placed)}  ({_counts(shapes)})",
            f"  pods never running              {len(self.never_ran)}  (deleted at their end; "
            "not a failure by itself)",
            f"  faults injected                 {len(self.faults)}  ({', '.join(self.faults)})",
            f"  comparisons made                {_counts(self.checked) or 'none'}",
            f"  refused while a fault had stopped the node's device plugin  "
            f"{len(self.refused_plugin_down)}  (the kubelet's own rule; not a failure)",
        ]
        lines += [f"  {name:<40}{n}" for name, n in self.bad().items()]
        details = [f"refused: {p}: {why}" for p, why in sorted(self.refused.items())]
        details += [
            f"refused, plugin down: {p}: {why}"
            for p, why in sorted(self.refused_plugin_down.items())
        ]
        details += [
            "twice: " + " and ".join("/".join(k) for k in sorted(p))
            for p in sorted(self.twice.found, key=sorted)
        ]
        details += ["mismatch: " + m.line() for m in self.mismatches.values()]
        details += [f"not back: {n}" for n in self.not_back]
        details += [f"fault error: {e}" for e in self.fault_errors]
        details += [f"never ran: {p}: {why}" for p, why in sorted(self.never_ran.items())]
        lines += [f"    {d}" for d in details[: limit * 3]]
        lines.append("soak: " + ("PASS" if self.ok() else "FAIL"))
        return "\n".join(lines)


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{k} {n}" for k, n in sorted(counter.items()))


def claim_cores(
    results: Iterable[Mapping[str, str]], driver: str, node: str, cores_per_device: int
) -> tuple[int, ...]:
    """The cores of a claim's allocation results on `node`: neurondevice<N> stands for the
    cores of device N, neuroncores<A>-<B> for cores A to B."""
    cores: set[int] = set()
    for r in results:
        if r.get("driver") != driver or r.get("pool") != node:
            continue
        device = r["device"]
        if device.startswith("neuroncores"):
            cores.update(parse_cores(device.removeprefix("neuroncores")))
        else:
            d = int(device.removeprefix("neurondevice"))
            cores.update(range(d * cores_per_device, (d + 1) * cores_per_device))
    return tuple(sorted(cores))
