"""Disk the harness needs before it builds: a run that fills the disk half-way fails deep inside
a kind node ("no space left on device" from containerd), far from its cause. The host phase
asks first and says what to free."""

from __future__ import annotations

import shutil
from pathlib import Path

GIB = 1024**3
# Measured on the offline path (`docker system df -v` on a running cluster): each of the five
# node containers' volumes holds 1.8 GiB (the images it was loaded with), the node image 1.1 GiB;
# a rebuild of the project's image and the release's control-plane images adds about 1 GiB.
NEEDED_GIB = 12


def shortfall(free: int, where: str, needed_gib: int = NEEDED_GIB) -> str | None:
    """A sentence when `free` bytes at `where` cannot hold a run, else None."""
    if free >= needed_gib * GIB:
        return None
    return (
        f"only {free / GIB:.1f} GiB free on {where}; a kind run needs about {needed_gib} GiB "
        "there. Free some: `docker image prune` removes untagged images (each older node "
        "image is 1.1 GiB), `rm -rf cluster/.cache/k8s-*` the built releases."
    )


def check(paths: list[Path]) -> list[str]:
    """Shortfalls for each existing path's filesystem, each filesystem once."""
    seen: set[int] = set()
    problems = []
    for path in paths:
        if not path.exists():
            continue
        dev = path.stat().st_dev
        if dev in seen:
            continue
        seen.add(dev)
        problem = shortfall(shutil.disk_usage(path).free, str(path))
        if problem:
            problems.append(problem)
    return problems
