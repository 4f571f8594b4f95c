"""Inputs for the frame-pipeline tests, built in memory: encoded images, hand-made headers, DICOM, video.

The suite imports test modules in importlib mode, where a test cannot import a helper module beside it;
the builders reach tests through the `build` fixture instead, and table-driven cases take it as their
first argument so the tables can still be written at module level.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_files
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

SCREEN_HEIGHT = 480
SCREEN_WIDTH = 640


class FrameBuilders:
    """Test-input builders, one namespace so a table case can be `lambda build, tmp_path: ...`."""

    @staticmethod
    def gradient(height: int, width: int) -> np.ndarray:
        """A smooth uint8 test image whose every row and column differs (orientation errors show)."""
        rows = np.linspace(0, 200, height)[:, None]
        columns = np.linspace(0, 55, width)[None, :]
        return np.rint(rows + columns).astype(np.uint8)

    @staticmethod
    def encode(image: np.ndarray, extension: str, params: Sequence[int] = ()) -> bytes:
        ok, buffer = cv2.imencode(extension, image, list(params))
        assert ok, extension
        return buffer.tobytes()

    @staticmethod
    def png_declaring(width: int, height: int) -> bytes:
        """A tiny PNG whose IHDR declares width x height, followed by an empty IDAT and IEND."""

        def chunk(kind: bytes, payload: bytes) -> bytes:
            return (
                struct.pack(">I", len(payload))
                + kind
                + payload
                + struct.pack(">I", zlib.crc32(kind + payload))
            )

        header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
        return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"") + chunk(b"IEND", b"")

    @staticmethod
    def jpeg_declaring(width: int, height: int) -> bytes:
        """A real JPEG with its start-of-frame size rewritten."""
        data = bytearray(FrameBuilders.encode(FrameBuilders.gradient(8, 8), ".jpg"))
        sof = data.index(b"\xff\xc0")
        data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
        return bytes(data)

    @staticmethod
    def bmp_declaring(width: int, height: int) -> bytes:
        data = bytearray(FrameBuilders.encode(FrameBuilders.gradient(8, 8), ".bmp"))
        data[18:26] = struct.pack("<ii", width, height)
        return bytes(data)

    @staticmethod
    def tiff_declaring(width: int, height: int, *, big_endian: bool = False) -> bytes:
        """A header-only TIFF: one IFD with ImageWidth and ImageLength as LONG values."""
        order = ">" if big_endian else "<"
        magic = b"MM\x00*" if big_endian else b"II*\x00"
        entries = struct.pack(order + "HHII", 256, 4, 1, width) + struct.pack(
            order + "HHII", 257, 4, 1, height
        )
        return magic + struct.pack(order + "I", 8) + struct.pack(order + "H", 2) + entries + b"\x00" * 4

    @staticmethod
    def flip_bit(data: bytes, index: int, bit: int = 0) -> bytes:
        flipped = bytearray(data)
        flipped[index] ^= 1 << bit
        return bytes(flipped)

    @staticmethod
    def dicom_dataset(
        pixels: np.ndarray | None,
        *,
        photometric: str = "MONOCHROME2",
        bits_stored: int = 8,
        transfer_syntax: str = ExplicitVRLittleEndian,
        **attributes: Any,
    ) -> Dataset:
        """A minimal ultrasound DICOM data set holding `pixels` (frames first for a mono cine); None = no pixels."""
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.6.1")  # Ultrasound Image Storage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        dataset = Dataset()
        dataset.file_meta = meta
        dataset.SOPClassUID = meta.MediaStorageSOPClassUID
        dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        dataset.Modality = "US"
        if pixels is not None:
            dataset.set_pixel_data(pixels, photometric, bits_stored, generate_instance_uid=False)
        meta.TransferSyntaxUID = UID(transfer_syntax)
        for keyword, value in attributes.items():
            setattr(dataset, keyword, value)
        return dataset

    @staticmethod
    def dicom_bytes(dataset: Dataset) -> bytes:
        buffer = io.BytesIO()
        pydicom.dcmwrite(buffer, dataset, enforce_file_format=True)
        return buffer.getvalue()

    @staticmethod
    def bundled_dicom_files() -> dict[str, Path]:
        """pydicom's bundled test files by name; the default pattern never triggers a download."""
        return {Path(name).name: Path(name) for name in get_testdata_files() if Path(name).is_file()}

    @staticmethod
    def write_video(path: Path, frames: Sequence[np.ndarray], fps: float = 10.0) -> Path:
        """Motion-JPEG in AVI: the one codec opencv-python-headless can both write and read back anywhere."""
        height, width = frames[0].shape[:2]
        writer = cv2.VideoWriter(
            str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (width, height), isColor=True
        )
        assert writer.isOpened()
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR) if frame.ndim == 2 else frame)
        writer.release()
        return path

    @staticmethod
    def screen_capture(seed: int = 0) -> tuple[np.ndarray, tuple[int, int, int, int]]:
        """An RGB device screen capture and the exact box (y0, y1, x0, x1) of the sector scan drawn in it.

        The sector has a sharp apex, speckle and a dark chamber; around it sit a colour bar, a grey-scale bar,
        a header strip, tick marks and several lines of text, the clutter `find_scan_region` must ignore.
        """
        rng = np.random.default_rng(seed)
        fan = np.zeros((SCREEN_HEIGHT, SCREEN_WIDTH), dtype=np.uint8)
        cv2.ellipse(fan, (320, 70), (330, 330), 0, 50, 130, 255, thickness=-1)
        cv2.circle(fan, (330, 250), 40, 0, thickness=-1)  # an anechoic chamber inside the scan
        speckle = np.clip(rng.rayleigh(45.0, fan.shape), 0, 255).astype(np.uint8)
        gray = np.where(fan > 0, speckle, 0).astype(np.uint8)
        fan_pixels = np.argwhere(fan > 0)
        (y0, x0), (y1, x1) = fan_pixels.min(axis=0), fan_pixels.max(axis=0) + 1

        screen = cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)
        cv2.rectangle(screen, (0, 0), (SCREEN_WIDTH - 1, 24), (70, 70, 90), thickness=-1)  # header strip
        cv2.putText(screen, "ACME US  C5-2  Abd", (8, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1)
        for line, text in enumerate(["Gn 62", "DR 60", "FR 28Hz", "14cm", "2D", "THI"]):
            cv2.putText(screen, text, (10, 70 + 22 * line), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (230, 230, 230), 1)
        for step in range(SCREEN_HEIGHT // 2 - 40):  # colour-flow bar, red to blue
            colour = (255 - step, 40, step)
            cv2.line(screen, (600, 60 + step), (614, 60 + step), colour, 1)
        for step in range(160):  # grey-scale bar
            cv2.line(screen, (578, 120 + step), (588, 120 + step), (step + 60,) * 3, 1)
        for tick in range(0, 380, 38):  # depth ticks along the scan edge
            cv2.line(screen, (545, 70 + tick), (553, 70 + tick), (255, 255, 255), 1)
        return screen, (int(y0), int(y1), int(x0), int(x1))


@pytest.fixture
def build() -> type[FrameBuilders]:
    return FrameBuilders
