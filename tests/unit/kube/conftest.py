"""The scripted API server of kube.py's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kube_fakeapi import FakeApi


@pytest.fixture
def api() -> Iterator[FakeApi]:
    server = FakeApi()
    yield server
    server.close()
