"""Decoding frames that are fine: round trips per format, media types, raw bytes, DICOM, folders and limits.
Malformed inputs are in test_decode_errors.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pydicom.examples
import pytest

from tests.support.frame_inputs import (
    IMAGE,
    LIMITS,
    MAX_PIXELS,
    Build,
)
from usqa.service.frames.decode import (
    decode_bytes,
    decode_image_bytes,
    decode_raw,
    iter_source_frames,
    read_frames,
)
from usqa.service.frames.errors import (
    EMPTY_FOLDER,
    TOO_MANY_FRAMES,
    UNRECOGNISED_IMAGE,
    EmptyFrameError,
    TooManyFramesError,
    UnsupportedFormatError,
)

# --- round trips -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("extension", [".png", ".bmp", ".tiff"])
def test_lossless_formats_round_trip_exactly(build: Build, extension: str) -> None:
    data = build.encode(IMAGE, extension)
    np.testing.assert_array_equal(decode_image_bytes(data, max_pixels=MAX_PIXELS), IMAGE)


def test_jpeg_round_trips_within_compression_error(build: Build) -> None:
    smooth = build.gradient(60, 90)
    decoded = decode_image_bytes(
        build.encode(smooth, ".jpg", (cv2.IMWRITE_JPEG_QUALITY, 95)), max_pixels=MAX_PIXELS
    )
    assert decoded.shape == smooth.shape
    assert np.abs(decoded.astype(int) - smooth.astype(int)).mean() < 2


def test_colour_and_deep_pngs_become_8_bit_luminance(build: Build) -> None:
    bgr = np.zeros((4, 6, 3), dtype=np.uint8)
    bgr[..., 2] = 255  # red, in OpenCV's BGR order
    assert np.all(decode_image_bytes(build.encode(bgr, ".png"), max_pixels=MAX_PIXELS) == 76)
    deep = np.full((4, 6), 65535, dtype=np.uint16)
    assert np.all(decode_image_bytes(build.encode(deep, ".png"), max_pixels=MAX_PIXELS) == 255)


def test_raw_bytes_round_trip() -> None:
    frame = decode_raw(IMAGE.tobytes(), IMAGE.shape[1], IMAGE.shape[0], max_pixels=MAX_PIXELS)
    np.testing.assert_array_equal(frame, IMAGE)
    frame[0, 0] = 1  # the frame owns writable memory, not a view of the request body


@pytest.mark.parametrize(
    ("media_type", "extension"),
    [
        ("image/png", ".png"),
        ("IMAGE/PNG; charset=binary", ".png"),
        ("image/jpeg", ".jpg"),
        ("image/jpg", ".jpg"),
        ("image/bmp", ".bmp"),
        ("image/tiff", ".tiff"),
        (None, ".png"),
        ("application/octet-stream", ".bmp"),
    ],
)
def test_decode_bytes_accepts_each_media_type(build: Build, media_type: str | None, extension: str) -> None:
    frames = decode_bytes(build.encode(IMAGE, extension), media_type, **LIMITS)
    assert len(frames) == 1
    assert frames[0].shape == IMAGE.shape


@pytest.mark.parametrize("media_type", [None, "application/octet-stream"])
def test_decode_bytes_reads_raw_when_given_a_size(media_type: str | None) -> None:
    frames = decode_bytes(IMAGE.tobytes(), media_type, width=71, height=45, **LIMITS)
    np.testing.assert_array_equal(frames[0], IMAGE)


def test_decode_bytes_returns_every_dicom_frame() -> None:
    data = pydicom.examples.get_path("ybr_color").read_bytes()
    frames = decode_bytes(data, "application/dicom", **LIMITS)
    assert len(frames) == 30
    assert decode_bytes(data, None, **LIMITS)[5].shape == (240, 320)


def test_read_frames_sniffs_a_dicom_file_without_extension(tmp_path: Path) -> None:
    path = tmp_path / "IM0001"
    shutil.copy(pydicom.examples.get_path("ybr_color"), path)
    assert sum(1 for _ in read_frames(path, **LIMITS)) == 30


def test_read_frames_reads_images_and_videos(build: Build, tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(build.encode(IMAGE, ".png"))
    np.testing.assert_array_equal(next(read_frames(tmp_path / "a.png", **LIMITS)), IMAGE)
    video = build.write_video(tmp_path / "clip.avi", [IMAGE[:40, :64]] * 3)
    assert [frame.shape for frame in read_frames(video, **LIMITS)] == [(40, 64)] * 3


def test_a_folder_is_read_in_sorted_order_with_frame_ids(build: Build, tmp_path: Path) -> None:
    (tmp_path / "b.png").write_bytes(build.encode(IMAGE, ".png"))
    (tmp_path / "a.bmp").write_bytes(build.encode(IMAGE, ".bmp"))
    shutil.copy(build.bundled_dicom_files()["SC_rgb_rle_2frame.dcm"], tmp_path / "c.dcm")
    (tmp_path / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (tmp_path / "DICOMDIR").write_bytes(b"index of other files")
    (tmp_path / "nested").mkdir()
    ids = [frame_id for frame_id, _ in iter_source_frames(tmp_path, **LIMITS)]
    assert ids == ["a.bmp#0", "b.png#0", "c.dcm#0", "c.dcm#1"]


def test_a_single_file_is_a_source_too(tmp_path: Path) -> None:
    path = tmp_path / "cine.dcm"
    shutil.copy(pydicom.examples.get_path("ybr_color"), path)
    pairs = list(iter_source_frames(path, **LIMITS))
    assert [frame_id for frame_id, _ in pairs[:2]] == ["cine.dcm#0", "cine.dcm#1"]
    assert len(pairs) == 30


def test_the_frame_limit_covers_the_whole_folder(build: Build, tmp_path: Path) -> None:
    for name in ("a.png", "b.png", "c.png"):
        (tmp_path / name).write_bytes(build.encode(IMAGE, ".png"))
    with pytest.raises(TooManyFramesError) as caught:
        list(iter_source_frames(tmp_path, max_pixels=MAX_PIXELS, max_frames=2))
    assert str(caught.value) == TOO_MANY_FRAMES.format(max_frames=2)


def test_an_empty_folder_fails_loudly(tmp_path: Path) -> None:
    (tmp_path / ".hidden").write_bytes(b"x")
    with pytest.raises(EmptyFrameError) as caught:
        list(iter_source_frames(tmp_path, **LIMITS))
    assert str(caught.value) == EMPTY_FOLDER.format(name=tmp_path.name)


def test_decode_image_bytes_refuses_dicom(build: Build) -> None:
    with pytest.raises(UnsupportedFormatError) as caught:
        decode_image_bytes(pydicom.examples.get_path("rgb_color").read_bytes(), max_pixels=MAX_PIXELS)
    assert str(caught.value) == UNRECOGNISED_IMAGE
