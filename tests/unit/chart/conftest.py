"""Fixtures of the chart tests; the helpers live in chartlib.py.

This directory is put on sys.path so that the test modules can `import chartlib` under any
pytest import mode.
"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chartlib import render
from dralib import with_dra


@pytest.fixture(scope="session")
def default_objects() -> list[dict]:
    return render()


@pytest.fixture(scope="module")
def dra() -> list[dict]:
    """The chart rendered with the DRA driver on beside the device plugin (dralib.ON)."""
    return with_dra()
