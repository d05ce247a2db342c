"""What the extender does during a bench_scale.py run: its peak resident memory, and where its
CPU goes (py-spy, from PyPI, sampling it while it holds the GIL)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "unit"))
from process_memory import rss_kib


def rss_sampler(pid: int, peak: list[float]) -> threading.Event:
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss_kib(pid))
            time.sleep(0.2)

    threading.Thread(target=sample, daemon=True).start()
    return stop


def start_profile(pid: int, workdir: Path) -> subprocess.Popen[bytes]:
    """py-spy (PyPI) sampling the extender for the run while it holds the GIL (its CPU, not
    its waits): collapsed stacks."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    out = workdir / "extender.stacks"
    flags = ["--format", "raw", "--output", str(out), "--rate", "200", "--nonblocking", "--gil"]
    return subprocess.Popen(
        [spy, "record", "--pid", str(pid), *flags],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def profile_summary(profiler: subprocess.Popen[bytes], workdir: Path, top: int = 15) -> str:
    """Where the extender's samples were, by function including callees (the share of samples
    whose stack holds it), for the functions of this project and the standard library."""
    profiler.send_signal(2)  # SIGINT: py-spy writes its output and exits
    profiler.wait(30)
    inclusive: dict[str, int] = {}
    total = 0
    for line in (workdir / "extender.stacks").read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        total += int(count)
        for frame in set(stack.split(";")):
            name = frame.split(" (")[0]
            inclusive[name] = inclusive.get(name, 0) + int(count)
    ranked = sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]
    rows = [f"  {100 * n / total:5.1f}%  {name}" for name, n in ranked]
    return f"extender profile ({total} samples, share of samples inside):\n" + "\n".join(rows)
