"""Frame inputs for the decoder tests (tests/service/frames/test_decode*.py): the limits, a test image, and
builders of malformed bytes and files (each takes the frames conftest's `build` fixture)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.encaps import encapsulate
from pydicom.uid import MPEG2MPML

Build = Any  # the conftest `build` fixture (FrameBuilders)
MAX_PIXELS = 4096 * 4096
MAX_FRAMES = 100
LIMITS: dict[str, int] = {"max_pixels": MAX_PIXELS, "max_frames": MAX_FRAMES}
IMAGE = np.add.outer(np.arange(45, dtype=np.uint16) * 4, np.arange(71, dtype=np.uint16)).astype(np.uint8)


# A case's input is bytes (sent to decode_bytes) or a file it writes under tmp_path (sent to read_frames).
MakeInput = Callable[[Build, Path], "bytes | Path"]


def png_input(build: Build) -> bytes:
    return build.encode(IMAGE, ".png")


def jpeg_input(build: Build) -> bytes:
    return build.encode(IMAGE, ".jpg")


def dicom_input(build: Build, pixels: np.ndarray | None = None, **attributes: Any) -> bytes:
    if pixels is None and "no_pixels" not in attributes:
        pixels = IMAGE
    attributes.pop("no_pixels", None)
    return build.dicom_bytes(build.dicom_dataset(pixels, **attributes))


def file_input(name: str, make: Callable[[Build], bytes]) -> MakeInput:
    def write(build: Build, tmp_path: Path) -> Path:
        path = tmp_path / name
        path.write_bytes(make(build))
        return path

    return write


def video_input(name: str, frames: int, height: int = 16, width: int = 16) -> MakeInput:
    def write(build: Build, tmp_path: Path) -> Path:
        images = [np.full((height, width), 100, dtype=np.uint8)] * frames
        return build.write_video(tmp_path / name, images)

    return write


def lying_dicom_input(build: Build) -> bytes:
    dataset = build.dicom_dataset(np.zeros((2, 45, 71), dtype=np.uint8), NumberOfFrames=2)
    dataset.NumberOfFrames = 10  # the header promises ten frames, the data holds two
    return build.dicom_bytes(dataset)


def mpeg2_dicom_input(build: Build) -> bytes:
    dataset = build.dicom_dataset(IMAGE, transfer_syntax=MPEG2MPML)
    dataset.PixelData = encapsulate([IMAGE.tobytes()])
    return build.dicom_bytes(dataset)


def huge_dicom_input(build: Build) -> bytes:
    dataset = build.dicom_dataset(np.zeros((2, 2), dtype=np.uint8))
    dataset.Rows = 60_000
    dataset.Columns = 60_000
    return build.dicom_bytes(dataset)
