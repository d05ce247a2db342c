"""Fixtures of the chart tests; the helpers live in chartlib.py.

This directory is put on sys.path so that the test modules can `import chartlib` under any
pytest import mode.
"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chartlib import render


@pytest.fixture(scope="session")
def default_objects() -> list[dict]:
    return render()
