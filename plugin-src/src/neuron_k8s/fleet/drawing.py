"""Node views drawn as text: each device a box of its cores in topology order (the trn torus
as 4 rows of 4, a ring as one chain wrapped every 8 devices), a letter per holding pod, `.` for
a free core, `x` for a free core on an unhealthy device (drawn `!..!`). ANSI colour only when
asked (cli.py decides: a terminal, no --no-color, no NO_COLOR). Pure: no I/O."""

from __future__ import annotations

import string
from collections.abc import Iterable, Sequence

from neuron_k8s.topology import Rule, Shape

from .holdings import Holding
from .model import NodeView, Room

LETTERS = string.ascii_uppercase + string.ascii_lowercase + string.digits
OVERFLOW = "+"  # a holder past the 62nd on one node
FREE, BROKEN = ".", "x"
TORUS_COLUMNS = 4
RING_COLUMNS = 8

RESET = "\x1b[0m"
RED, DIM = "31", "2"
PALETTE = ("36", "35", "33", "34", "32", "96", "95", "93", "94", "92")


def paint(text: str, code: str, colour: bool) -> str:
    return f"\x1b[{code}m{text}{RESET}" if colour and code else text


def ranges(values: Iterable[int]) -> str:
    """0,1,2,3,6 -> "0-3,6"."""
    out: list[str] = []
    run: list[int] = []
    for v in sorted(values):
        if run and v == run[-1] + 1:
            run.append(v)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [v]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out) or "-"


def letters(view: NodeView) -> dict[str, str]:
    """A letter per holder (pod, or claim without a pod), in the order of their first core."""
    first: dict[str, int] = {}
    for h in view.holdings:
        first[h.key] = min(first.get(h.key, 1 << 30), min(h.cores, default=1 << 30))
    ordered = sorted(first, key=lambda k: (first[k], k))
    return {k: LETTERS[i] if i < len(LETTERS) else OVERFLOW for i, k in enumerate(ordered)}


def topology_line(shape: Shape) -> str:
    if shape.rule is Rule.ALIGNED:
        sizes = ", ".join(str(s) for s in reversed(shape.device_sizes()))
        return (
            f"{shape.devices} devices x {shape.cores_per_device} cores, 4x4 torus: "
            f"whole devices in aligned blocks of {sizes}"
        )
    return (
        f"{shape.devices} devices x {shape.cores_per_device} cores, ring: "
        "any contiguous run of devices"
    )


def tints(marks: dict[str, str]) -> dict[str, str]:
    return {k: PALETTE[i % len(PALETTE)] for i, k in enumerate(marks)}


def device_rows(view: NodeView, colour: bool) -> list[str]:
    shape = view.shape
    if shape is None:
        return []
    marks = letters(view)
    tint = tints(marks)
    by_core = view.holders_by_core()
    width = len(str(shape.devices - 1))
    boxes = []
    for d in range(shape.devices):
        bad = d in view.unhealthy
        cells = []
        for c in shape.cores_of(d):
            holders = by_core.get(c)
            if holders:
                key = holders[0].key
                cells.append(paint(marks[key], tint[key], colour))
            else:
                cells.append(paint(BROKEN, RED, colour) if bad else paint(FREE, DIM, colour))
        left, right = ("!", "!") if bad else ("[", "]")
        if bad:
            left, right = paint(left, RED, colour), paint(right, RED, colour)
        boxes.append(f"{d:>{width}} {left}{''.join(cells)}{right}")
    per_row = TORUS_COLUMNS if shape.rule is Rule.ALIGNED else RING_COLUMNS
    return ["    " + " ".join(boxes[i : i + per_row]) for i in range(0, len(boxes), per_row)]


def room_lines(shape: Shape, room: Room) -> list[str]:
    fits = (
        f"fits now: {room.largest_device_request} devices, {room.largest_core_request} cores; "
        f"fragmentation {room.fragmentation:.2f}"
    )
    if shape.rule is Rule.ALIGNED:
        sets = ", ".join(f"{n}:{k}" for n, k in room.device_room)
        return [fits, f"free aligned blocks (devices:count): {sets}"]
    runs = ", ".join(str(r) for r in room.free_device_runs) or "none"
    return [fits, f"free runs of whole devices: {runs}"]


def holding_line(h: Holding) -> str:
    who = f"{h.namespace}/{h.pod}" if h.pod else f"{h.namespace}/(claim {h.claim}, no pod)"
    container = f" {h.container}" if h.container else ""
    claim = f" claim {h.claim}" if h.claim and h.pod else ""
    return f"{who}{container}: cores {ranges(h.cores)} (devices {ranges(h.devices)}){claim}"


def draw_node(view: NodeView, colour: bool = False) -> list[str]:
    shape, room = view.shape, view.room
    title = f"{view.name}  {view.instance_type or (shape.name if shape else '?')}  {view.path}"
    lines = [paint(title, "1", colour)]
    if shape is None or room is None:
        lines.append("  devices unknown: " + "; ".join(view.notes or ["no shape"]))
        return lines
    held = view.held.bit_count()
    broken = sum(shape.cores_per_device for d in view.unhealthy if d < shape.devices)
    lines.append(
        f"  cores: {held} held, {room.free_cores} free, {broken} on unhealthy devices, "
        f"of {shape.cores}"
    )
    lines.append(f"  {topology_line(shape)}")
    lines += device_rows(view, colour)
    lines += [f"  {line}" for line in room_lines(shape, room)]
    marks = letters(view)
    tint = tints(marks)
    for h in sorted(view.holdings, key=lambda h: (min(h.cores, default=0), h.key, h.container)):
        lines.append(f"  {paint(marks[h.key], tint[h.key], colour)} {holding_line(h)}")
    for d, why in sorted(view.unhealthy.items()):
        lines.append(f"  {paint(BROKEN, RED, colour)} device {d} unhealthy: {why}")
    for u in view.unreadable:
        lines.append(f"  ? {u.namespace}/{u.name} unreadable: {u.reason}")
    lines += [f"  note: {n}" for n in view.notes]
    return lines


def draw_nodes(views: Sequence[NodeView], colour: bool = False) -> str:
    if not views:
        return "No Neuron nodes.\n"
    legend = (
        f"{FREE} free core, letter: held by the pod listed under its node, "
        f"{BROKEN}/!..!: unhealthy device"
    )
    blocks = ["\n".join(draw_node(v, colour)) for v in views]
    return "\n\n".join(blocks) + f"\n\n{paint(legend, DIM, colour)}\n"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns as kubectl prints them: left-aligned, three spaces apart."""
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    lines = [
        "   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in (header, *rows)
    ]
    return "\n".join(lines) + "\n"
