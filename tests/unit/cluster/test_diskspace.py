"""The harness refuses to start a run the disk cannot hold, and says what to free."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "cluster"))
import diskspace
from diskspace import GIB, NEEDED_GIB


def test_enough_free_space_is_no_problem() -> None:
    assert diskspace.shortfall(NEEDED_GIB * GIB, "/var/lib/docker") is None


def test_too_little_free_space_names_the_place_and_what_to_free() -> None:
    problem = diskspace.shortfall(3 * GIB, "/var/lib/docker")
    assert problem is not None
    assert "3.0 GiB free on /var/lib/docker" in problem
    assert "docker image prune" in problem


def test_each_filesystem_is_reported_once(tmp_path, monkeypatch) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    monkeypatch.setattr(diskspace.shutil, "disk_usage", lambda p: type("U", (), {"free": GIB}))
    assert len(diskspace.check([a, b, tmp_path / "absent"])) == 1
