"""A real Orthanc per test (tests/support/orthanc.py) for the record room's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ...support.orthanc import OrthancServer


@pytest.fixture
def pacs(tmp_path: Path) -> Iterator[OrthancServer]:
    server = OrthancServer(tmp_path / "pacs").start()
    try:
        yield server
    finally:
        server.stop()
