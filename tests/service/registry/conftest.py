from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def sources(tmp_path: Path) -> dict[str, Path]:
    src = tmp_path / "src"
    src.mkdir()
    files = {}
    for role in ("controller", "predictor"):
        path = src / f"{role}.onnx"
        path.write_bytes(os.urandom(2048))
        files[f"{role}.onnx"] = path
    return files
