from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cv2
import pytest

from usqa.service.frames.errors import CORRUPT_HEADER, CorruptFrameError
from usqa.service.frames.headers import DeclaredSize, declared_size, jpeg_is_complete, sniff_format

Build = Any  # the conftest `build` fixture (FrameBuilders); conftest cannot be imported for its type
MakeBytes = Callable[[Build], bytes]


def _odd(build: Build, extension: str, params: tuple[int, ...] = ()) -> bytes:
    return build.encode(build.gradient(23, 37), extension, params)


@pytest.mark.parametrize(
    ("kind", "make"),
    [
        ("png", lambda b: _odd(b, ".png")),
        ("jpeg", lambda b: _odd(b, ".jpg")),
        ("jpeg", lambda b: _odd(b, ".jpg", (cv2.IMWRITE_JPEG_PROGRESSIVE, 1))),
        ("bmp", lambda b: _odd(b, ".bmp")),
        ("tiff", lambda b: _odd(b, ".tiff")),
    ],
    ids=["png", "jpeg", "jpeg-progressive", "bmp", "tiff"],
)
def test_sniffs_and_reads_the_declared_size_of_encoded_images(
    build: Build, kind: str, make: MakeBytes
) -> None:
    data = make(build)
    assert sniff_format(data) == kind
    assert declared_size(data, kind) == DeclaredSize(width=37, height=23)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kind", "make", "width"),
    [
        ("png", lambda b: b.png_declaring(100_000, 3), 100_000),
        ("jpeg", lambda b: b.jpeg_declaring(65_000, 3), 65_000),
        ("bmp", lambda b: b.bmp_declaring(100_000, -3), 100_000),  # negative height: rows stored top-down
        ("tiff", lambda b: b.tiff_declaring(100_000, 3), 100_000),
        ("tiff", lambda b: b.tiff_declaring(100_000, 3, big_endian=True), 100_000),
    ],
    ids=["png", "jpeg", "bmp-top-down", "tiff-little-endian", "tiff-big-endian"],
)
def test_reads_hand_made_headers(build: Build, kind: str, make: MakeBytes, width: int) -> None:
    assert declared_size(make(build), kind) == DeclaredSize(width=width, height=3)  # type: ignore[arg-type]


def test_dicom_wins_over_a_tiff_preamble(build: Build) -> None:
    # Dual-personality files put a TIFF header in the DICOM preamble; they are DICOM first.
    data = build.tiff_declaring(8, 8).ljust(128, b"\x00") + b"DICM"
    assert sniff_format(data) == "dicom"


@pytest.mark.parametrize("data", [b"", b"\x89PN", b"GIF89a", b"\x00" * 200, b"DICM" + b"\x00" * 200])
def test_unknown_bytes_sniff_as_none(data: bytes) -> None:
    assert sniff_format(data) is None


@pytest.mark.parametrize(
    ("kind", "make"),
    [
        ("png", lambda b: _odd(b, ".png")[:20]),
        ("png", lambda b: b.flip_bit(_odd(b, ".png"), 13)),  # "IHDR" no longer names the first chunk
        ("jpeg", lambda b: _odd(b, ".jpg")[:6]),
        ("jpeg", lambda b: b"\xff\xd8\xff\xd9"),  # end of image before any frame header
        ("bmp", lambda b: b"BM" + b"\x00" * 8),
        ("tiff", lambda b: b"II*\x00\xff\xff\x00\x00"),  # first directory past the end
    ],
    ids=[
        "png-truncated",
        "png-bit-flip",
        "jpeg-truncated",
        "jpeg-no-frame",
        "bmp-truncated",
        "tiff-bad-offset",
    ],
)
def test_unreadable_headers_are_corrupt(build: Build, kind: str, make: MakeBytes) -> None:
    with pytest.raises(CorruptFrameError) as caught:
        declared_size(make(build), kind)  # type: ignore[arg-type]
    assert str(caught.value) == CORRUPT_HEADER.format(kind=kind.upper())


def test_a_jpeg_is_complete_only_with_its_end_marker_after_the_scan(build: Build) -> None:
    data = _odd(build, ".jpg")
    assert jpeg_is_complete(data)
    assert not jpeg_is_complete(data[:-2])
    assert not jpeg_is_complete(data[: len(data) // 2])
