"""A data-set folder as the archive POST /datasets takes (a zip of the folder format, paths relative to it)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path


def _write(folder: Path, target: Path | io.BytesIO) -> None:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            zf.write(path, path.relative_to(folder))


def zip_folder(folder: Path, archive: Path) -> Path:
    """Write `folder` as the zip `archive` (its parent made if needed)."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    _write(folder, archive)
    return archive


def zipped(folder: Path) -> bytes:
    """`folder` as zip bytes, in memory."""
    buffer = io.BytesIO()
    _write(folder, buffer)
    return buffer.getvalue()
