from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest

WriteFolder = Callable[..., Path]


def _frame(seed: int, size: int = 48) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (size, size), dtype=np.uint8)


@pytest.fixture
def write_folder(tmp_path: Path) -> WriteFolder:
    """Write a small data-set folder: `rows` are dicts of labels.csv cells; frames/masks named there are made."""

    def write(
        rows: Sequence[dict[str, str]], *, columns: Sequence[str] | None = None, size: int = 48
    ) -> Path:
        root = tmp_path / "data"
        root.mkdir(exist_ok=True)
        columns = list(columns or rows[0].keys())
        for i, row in enumerate(rows):
            for key in ("frame", "mask"):
                ref = row.get(key, "")
                if ref and not ref.startswith(("missing", "../")) and "#" not in ref:
                    path = root / ref
                    path.parent.mkdir(parents=True, exist_ok=True)
                    if not path.exists():
                        image = (
                            _frame(i, size)
                            if key == "frame"
                            else (_frame(i, size) > 128).astype(np.uint8) * 255
                        )
                        cv2.imwrite(str(path), image)
        with (root / "labels.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        return root

    return write
