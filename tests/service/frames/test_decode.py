from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pydicom.examples
import pytest
from pydicom.encaps import encapsulate
from pydicom.uid import MPEG2MPML

from usqa.service.frames.decode import (
    decode_bytes,
    decode_image_bytes,
    decode_raw,
    iter_source_frames,
    read_frames,
)
from usqa.service.frames.errors import (
    CONTENT_MISMATCH,
    CORRUPT_DICOM,
    CORRUPT_HEADER,
    CORRUPT_IMAGE,
    CORRUPT_VIDEO,
    DICOM_BAD_ATTRIBUTE,
    DICOM_SHORT_PIXEL_DATA,
    DICOM_UNDECODABLE,
    EMPTY_FOLDER,
    EMPTY_IMAGE,
    EMPTY_INPUT,
    FRAME_TOO_LARGE,
    NO_PIXEL_DATA,
    RAW_SIZE_MISMATCH,
    RAW_SIZE_REQUIRED,
    TOO_MANY_FRAMES,
    UNRECOGNISED_BYTES,
    UNRECOGNISED_FILE,
    UNRECOGNISED_IMAGE,
    UNSUPPORTED_MEDIA_TYPE,
    UNSUPPORTED_PHOTOMETRIC,
    UNSUPPORTED_TRANSFER_SYNTAX,
    CorruptFrameError,
    EmptyFrameError,
    FrameError,
    FrameTooLargeError,
    NoPixelDataError,
    RawSizeMismatchError,
    TooManyFramesError,
    UnsupportedFormatError,
)

Build = Any  # the conftest `build` fixture (FrameBuilders)
MAX_PIXELS = 4096 * 4096
MAX_FRAMES = 100
LIMITS: dict[str, int] = {"max_pixels": MAX_PIXELS, "max_frames": MAX_FRAMES}
IMAGE = np.add.outer(np.arange(45, dtype=np.uint16) * 4, np.arange(71, dtype=np.uint16)).astype(np.uint8)


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


# --- every malformed input: one typed error, one constant message ----------------------------------------

# A case's input is bytes (sent to decode_bytes) or a file it writes under tmp_path (sent to read_frames).
MakeInput = Callable[[Build, Path], "bytes | Path"]


def _png(build: Build) -> bytes:
    return build.encode(IMAGE, ".png")


def _jpeg(build: Build) -> bytes:
    return build.encode(IMAGE, ".jpg")


def _dicom(build: Build, pixels: np.ndarray | None = None, **attributes: Any) -> bytes:
    if pixels is None and "no_pixels" not in attributes:
        pixels = IMAGE
    attributes.pop("no_pixels", None)
    return build.dicom_bytes(build.dicom_dataset(pixels, **attributes))


def _file(name: str, make: Callable[[Build], bytes]) -> MakeInput:
    def write(build: Build, tmp_path: Path) -> Path:
        path = tmp_path / name
        path.write_bytes(make(build))
        return path

    return write


def _video(name: str, frames: int, height: int = 16, width: int = 16) -> MakeInput:
    def write(build: Build, tmp_path: Path) -> Path:
        images = [np.full((height, width), 100, dtype=np.uint8)] * frames
        return build.write_video(tmp_path / name, images)

    return write


def _lying_dicom(build: Build) -> bytes:
    dataset = build.dicom_dataset(np.zeros((2, 45, 71), dtype=np.uint8), NumberOfFrames=2)
    dataset.NumberOfFrames = 10  # the header promises ten frames, the data holds two
    return build.dicom_bytes(dataset)


def _mpeg2_dicom(build: Build) -> bytes:
    dataset = build.dicom_dataset(IMAGE, transfer_syntax=MPEG2MPML)
    dataset.PixelData = encapsulate([IMAGE.tobytes()])
    return build.dicom_bytes(dataset)


def _huge_dicom(build: Build) -> bytes:
    dataset = build.dicom_dataset(np.zeros((2, 2), dtype=np.uint8))
    dataset.Rows = 60_000
    dataset.Columns = 60_000
    return build.dicom_bytes(dataset)


MALFORMED: list[tuple[str, MakeInput, dict[str, Any], type[FrameError], str]] = [
    ("empty-bytes", lambda b, t: b"", {}, EmptyFrameError, EMPTY_INPUT),
    ("empty-file", _file("empty.png", lambda b: b""), {}, EmptyFrameError, EMPTY_INPUT),
    (
        "random-garbage",
        lambda b, t: np.random.default_rng(7).bytes(2048),
        {},
        UnsupportedFormatError,
        UNRECOGNISED_BYTES,
    ),
    (
        "garbage-file",
        _file("notes.txt", lambda b: b"just some text\n"),
        {},
        UnsupportedFormatError,
        UNRECOGNISED_FILE.format(name="notes.txt"),
    ),
    (
        "truncated-png",
        lambda b, t: _png(b)[: len(_png(b)) // 2],
        {},
        CorruptFrameError,
        CORRUPT_IMAGE.format(kind="PNG"),
    ),
    (
        "truncated-png-header",
        lambda b, t: _png(b)[:20],
        {},
        CorruptFrameError,
        CORRUPT_HEADER.format(kind="PNG"),
    ),
    (
        "truncated-jpeg",
        lambda b, t: _jpeg(b)[: len(_jpeg(b)) // 2],
        {},
        CorruptFrameError,
        CORRUPT_IMAGE.format(kind="JPEG"),
    ),
    (
        "truncated-jpeg-end-marker",
        lambda b, t: _jpeg(b)[:-2],
        {},
        CorruptFrameError,
        CORRUPT_IMAGE.format(kind="JPEG"),
    ),
    (
        "jpeg-cut-before-frame-header",
        lambda b, t: _jpeg(b)[:10],
        {},
        CorruptFrameError,
        CORRUPT_HEADER.format(kind="JPEG"),
    ),
    (
        "bit-flipped-png-ihdr",  # bit depth 8 -> 9: the header CRC no longer matches
        lambda b, t: b.flip_bit(_png(b), 24),
        {},
        CorruptFrameError,
        CORRUPT_IMAGE.format(kind="PNG"),
    ),
    (
        "bit-flipped-png-signature",
        lambda b, t: b.flip_bit(_png(b), 1),
        {},
        UnsupportedFormatError,
        UNRECOGNISED_BYTES,
    ),
    (
        "png-declaring-100000x100000",
        lambda b, t: b.png_declaring(100_000, 100_000),
        {},
        FrameTooLargeError,
        FRAME_TOO_LARGE.format(width=100_000, height=100_000, max_pixels=MAX_PIXELS),
    ),
    (
        "png-declaring-0x10",
        lambda b, t: b.png_declaring(0, 10),
        {},
        EmptyFrameError,
        EMPTY_IMAGE.format(width=0, height=10),
    ),
    (
        "jpeg-declaring-60000x60000",
        lambda b, t: b.jpeg_declaring(60_000, 60_000),
        {},
        FrameTooLargeError,
        FRAME_TOO_LARGE.format(width=60_000, height=60_000, max_pixels=MAX_PIXELS),
    ),
    (
        "bmp-declaring-100000x100000",
        lambda b, t: b.bmp_declaring(100_000, 100_000),
        {},
        FrameTooLargeError,
        FRAME_TOO_LARGE.format(width=100_000, height=100_000, max_pixels=MAX_PIXELS),
    ),
    (
        "tiff-declaring-100000x100000",
        lambda b, t: b.tiff_declaring(100_000, 100_000),
        {},
        FrameTooLargeError,
        FRAME_TOO_LARGE.format(width=100_000, height=100_000, max_pixels=MAX_PIXELS),
    ),
    (
        "raw-length-mismatch",
        lambda b, t: b"\x00" * 10,
        {"media_type": "application/octet-stream", "width": 4, "height": 4},
        RawSizeMismatchError,
        RAW_SIZE_MISMATCH.format(width=4, height=4, expected=16, actual=10),
    ),
    (
        "raw-zero-width",
        lambda b, t: b"\x00" * 10,
        {"media_type": "application/octet-stream", "width": 0, "height": 10},
        EmptyFrameError,
        EMPTY_IMAGE.format(width=0, height=10),
    ),
    (
        "raw-without-height",
        lambda b, t: b"\x00" * 10,
        {"media_type": "application/octet-stream", "width": 10},
        RawSizeMismatchError,
        RAW_SIZE_REQUIRED,
    ),
    (
        "raw-too-large",
        lambda b, t: b"\x00" * 10,
        {"width": 5000, "height": 5000},
        FrameTooLargeError,
        FRAME_TOO_LARGE.format(width=5000, height=5000, max_pixels=MAX_PIXELS),
    ),
    (
        "dicom-without-pixel-data",
        lambda b, t: _dicom(b, no_pixels=True),
        {"media_type": "application/dicom"},
        NoPixelDataError,
        NO_PIXEL_DATA,
    ),
    (
        "dicom-declaring-60000x60000",
        lambda b, t: _huge_dicom(b),
        {"media_type": "application/dicom"},
        FrameTooLargeError,
        FRAME_TOO_LARGE.format(width=60_000, height=60_000, max_pixels=MAX_PIXELS),
    ),
    (
        "dicom-lying-frame-count",
        lambda b, t: _lying_dicom(b),
        {"media_type": "application/dicom"},
        CorruptFrameError,
        DICOM_SHORT_PIXEL_DATA.format(expected=10 * 45 * 71, actual=2 * 45 * 71),
    ),
    (
        "dicom-too-many-frames",
        lambda b, t: _dicom(b, np.zeros((5, 8, 8), dtype=np.uint8), NumberOfFrames=5),
        {"max_frames": 4},
        TooManyFramesError,
        TOO_MANY_FRAMES.format(max_frames=4),
    ),
    (
        "dicom-zero-frames",
        lambda b, t: _dicom(b, NumberOfFrames=0),
        {},
        CorruptFrameError,
        DICOM_BAD_ATTRIBUTE.format(keyword="NumberOfFrames"),
    ),
    (
        "dicom-unreadable-frame-count",
        lambda b, t: _dicom(b, NumberOfFrames=1).replace(b"IS\x02\x001 ", b"IS\x02\x001A"),
        {},
        CorruptFrameError,
        DICOM_BAD_ATTRIBUTE.format(keyword="NumberOfFrames"),
    ),
    (
        "dicom-unsupported-photometric",
        lambda b, t: _dicom(b, PhotometricInterpretation="HSV"),
        {},
        UnsupportedFormatError,
        UNSUPPORTED_PHOTOMETRIC.format(value="HSV"),
    ),
    (
        "dicom-mpeg2-transfer-syntax",
        lambda b, t: _mpeg2_dicom(b),
        {},
        UnsupportedFormatError,
        UNSUPPORTED_TRANSFER_SYNTAX.format(name=MPEG2MPML.name),
    ),
    (
        "dicom-garbage-after-preamble",
        lambda b, t: b"\x00" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\xff" + b"\x00" * 64,
        {},
        CorruptFrameError,
        DICOM_BAD_ATTRIBUTE.format(keyword="TransferSyntaxUID"),
    ),
    (
        "dicom-unknown-value-representation",
        lambda b, t: b"\x00" * 128 + b"DICM" + b"\x02\x00\x10\x00ZZ\x04\x001.2\x00",
        {},
        CorruptFrameError,
        CORRUPT_DICOM,
    ),
    (
        "dicom-undecodable-pixels",
        _file("bundled-broken.dcm", lambda b: b.bundled_dicom_files()["JPEG-lossy.dcm"].read_bytes()),
        {},
        CorruptFrameError,
        DICOM_UNDECODABLE,
    ),
    (
        "unknown-media-type",
        lambda b, t: _png(b),
        {"media_type": "image/gif"},
        UnsupportedFormatError,
        UNSUPPORTED_MEDIA_TYPE.format(
            media_type="image/gif",
            supported="image/png, image/jpeg, image/bmp, image/tiff, application/dicom, image/jpg, "
            "image/x-ms-bmp, application/octet-stream",
        ),
    ),
    (
        "media-type-contradicts-content",
        lambda b, t: _jpeg(b),
        {"media_type": "image/png"},
        CorruptFrameError,
        CONTENT_MISMATCH.format(media_type="image/png", kind="PNG"),
    ),
    (
        "dicom-media-type-on-png",
        lambda b, t: _png(b),
        {"media_type": "application/dicom"},
        CorruptFrameError,
        CONTENT_MISMATCH.format(media_type="application/dicom", kind="DICOM"),
    ),
    (
        "video-that-is-not-a-video",
        _file("clip.mp4", lambda b: b"\x00\x00\x00\x18ftypmp42" + b"not really a movie" * 20),
        {},
        CorruptFrameError,
        CORRUPT_VIDEO.format(name="clip.mp4"),
    ),
    (
        "video-too-many-frames",
        _video("long.avi", frames=6),
        {"max_frames": 5},
        TooManyFramesError,
        TOO_MANY_FRAMES.format(max_frames=5),
    ),
    (
        "video-frames-too-large",
        _video("wide.avi", frames=1, width=64),
        {"max_pixels": 1000},
        FrameTooLargeError,
        FRAME_TOO_LARGE.format(width=64, height=16, max_pixels=1000),
    ),
]


@pytest.mark.parametrize(
    ("make", "kwargs", "error", "message"),
    [case[1:] for case in MALFORMED],
    ids=[case[0] for case in MALFORMED],
)
def test_malformed_input_raises_its_typed_error(
    build: Build,
    tmp_path: Path,
    make: MakeInput,
    kwargs: dict[str, Any],
    error: type[FrameError],
    message: str,
) -> None:
    source = make(build, tmp_path)
    arguments = {**LIMITS, **kwargs}
    with pytest.raises(FrameError) as caught:
        if isinstance(source, Path):
            list(read_frames(source, **arguments))
        else:
            decode_bytes(source, **arguments)
    assert type(caught.value) is error
    assert caught.value.code == error.code
    assert str(caught.value) == message


def test_every_error_class_has_its_own_stable_code() -> None:
    codes = {
        UnsupportedFormatError: "unsupported_format",
        CorruptFrameError: "corrupt_frame",
        EmptyFrameError: "empty_frame",
        FrameTooLargeError: "frame_too_large",
        RawSizeMismatchError: "raw_size_mismatch",
        NoPixelDataError: "no_pixel_data",
        TooManyFramesError: "too_many_frames",
    }
    for error, code in codes.items():
        assert error.code == code
        assert issubclass(error, FrameError)
        assert issubclass(error, ValueError)


def test_a_wrapped_decoder_error_keeps_its_cause(build: Build) -> None:
    data = build.bundled_dicom_files()["JPEG-lossy.dcm"].read_bytes()
    with pytest.raises(CorruptFrameError) as caught:
        decode_bytes(data, max_pixels=MAX_PIXELS, max_frames=MAX_FRAMES)
    assert isinstance(caught.value.__cause__, Exception)
