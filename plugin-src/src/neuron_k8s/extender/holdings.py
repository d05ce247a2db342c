"""Who holds which cores of each node: the pods whose record counts, ("pod", uid), and the
reservations of binds in flight, ("res", uid). Not locked: the state uses it under its lock."""

from __future__ import annotations

from dataclasses import dataclass

from ..pods import ContainerAllocation

Holder = tuple[str, str]


class Unavailable(Exception):
    """A reservation cannot be made; the message says why."""


@dataclass(slots=True)
class Reservation:
    uid: str
    key: str
    node: str
    cores: int
    allocations: tuple[ContainerAllocation, ...]
    confirmed_at: float | None = None  # when the Binding was created (monotonic)


class Holdings:
    def __init__(self) -> None:
        self._by_node: dict[str, dict[Holder, int]] = {}

    def set(self, node: str, holder: Holder, cores: int | None) -> None:
        """`holder` holds `cores` (a core mask) on `node`; None: nothing any more."""
        holders = self._by_node.setdefault(node, {})
        if cores is None:
            holders.pop(holder, None)
        else:
            holders[holder] = cores
        if not holders:
            del self._by_node[node]

    def used(self, node: str, without: str | None = None) -> int:
        """The cores held on `node`, but for those of pod `without` (its record and its
        reservation)."""
        used = 0
        for holder, cores in self._by_node.get(node, {}).items():
            if holder[1] != without:
                used |= cores
        return used

    def of(self, node: str) -> dict[Holder, int]:
        return dict(self._by_node.get(node, {}))

    def usage(self) -> dict[str, int]:
        """node -> used core mask, for every node anything is held on."""
        return {node: self.used(node) for node in self._by_node}
