from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from usqa.service.datasets.contact_sheet import CAPTION_HEIGHT, contact_sheet, write_png


def test_grid_shape_and_letterbox() -> None:
    images = [
        np.full((20, 40), 200, np.uint8),
        np.full((30, 30, 3), 100, np.uint8),
        np.zeros((5, 5), np.uint8),
    ]
    sheet = contact_sheet(images, ["a", "b", "c"], columns=2, tile=32)
    assert sheet.shape == (2 * (32 + CAPTION_HEIGHT), 64, 3)
    assert sheet.dtype == np.uint8
    # The 20x40 frame is letterboxed: rows above it are padding, its centre row is the image.
    assert sheet[0, 16, 0] == 0 and sheet[16, 16, 0] == 200


def test_mismatched_captions_and_empty_input_are_refused() -> None:
    with pytest.raises(ValueError, match="2 images but 1 captions"):
        contact_sheet([np.zeros((4, 4), np.uint8)] * 2, ["x"])
    with pytest.raises(ValueError, match="at least one image"):
        contact_sheet([], [])


def test_write_png_is_atomic_and_readable(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "sheet.png"
    image = np.arange(64, dtype=np.uint8).reshape(8, 8)
    write_png(path, image)
    assert np.array_equal(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), image)
    assert [p.name for p in path.parent.iterdir()] == ["sheet.png"]
