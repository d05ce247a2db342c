"""Fixtures of the chart tests; the helpers live in chartlib.py."""

import pytest
from chartlib import render


@pytest.fixture(scope="session")
def default_objects() -> list[dict]:
    return render()
