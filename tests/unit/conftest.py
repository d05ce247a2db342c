"""Puts tests/unit on the import path, so that every test folder can import `waiting`, and holds
the fixtures more than one folder uses."""

import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture
def short_dir() -> Iterator[str]:
    """A directory short enough for unix sockets: their paths are limited to ~107 bytes, and
    pytest's tmp_path can be longer."""
    path = tempfile.mkdtemp(prefix="unit", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)
