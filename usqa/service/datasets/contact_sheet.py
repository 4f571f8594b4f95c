"""Contact sheets: a grid of captioned thumbnails, for `usqa inspect`, the demo and the docs."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

CAPTION_HEIGHT = 14


def _to_bgr_tile(image: np.ndarray, tile: int) -> np.ndarray:
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    h, w = image.shape[:2]
    scale = tile / max(h, w)
    resized = cv2.resize(
        image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
    )
    canvas = np.zeros((tile, tile, 3), np.uint8)
    y0, x0 = (tile - resized.shape[0]) // 2, (tile - resized.shape[1]) // 2
    canvas[y0 : y0 + resized.shape[0], x0 : x0 + resized.shape[1]] = resized
    return canvas


def contact_sheet(
    images: Sequence[np.ndarray], captions: Sequence[str], *, columns: int = 8, tile: int = 128
) -> np.ndarray:
    """A uint8 BGR grid of `images` (gray or BGR, any size), each letterboxed into `tile` with its caption."""
    if len(images) != len(captions):
        raise ValueError(f"{len(images)} images but {len(captions)} captions")
    if not images:
        raise ValueError("a contact sheet needs at least one image")
    columns = max(1, min(columns, len(images)))
    rows = -(-len(images) // columns)
    cell_h = tile + CAPTION_HEIGHT
    sheet = np.full((rows * cell_h, columns * tile, 3), 32, np.uint8)
    for i, (image, caption) in enumerate(zip(images, captions, strict=True)):
        r, c = divmod(i, columns)
        y, x = r * cell_h, c * tile
        sheet[y : y + tile, x : x + tile] = _to_bgr_tile(image, tile)
        cv2.putText(
            sheet,
            caption[:40],
            (x + 2, y + tile + 10),
            cv2.FONT_HERSHEY_PLAIN,
            0.7,
            (230, 230, 230),
            1,
            cv2.LINE_AA,
        )
    return sheet


def write_png(path: Path, image: np.ndarray) -> None:
    """Write a PNG atomically: a reader never sees half a file."""
    # Level 9: sheets are written once and read often (docs, review); the extra encode time is negligible.
    ok, encoded = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise ValueError(f"could not encode {path.name} as PNG")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(encoded.tobytes())
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates 0600; a figure is for everyone who can read the folder.
        Path(tmp).chmod(0o644)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
