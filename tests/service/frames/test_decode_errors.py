"""Every malformed input to the decoders: one typed error, one constant message (builders in
tests/support/frame_inputs.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom.uid import MPEG2MPML

from tests.support.frame_inputs import (
    LIMITS,
    MAX_FRAMES,
    MAX_PIXELS,
    Build,
    MakeInput,
    dicom_input,
    file_input,
    huge_dicom_input,
    jpeg_input,
    lying_dicom_input,
    mpeg2_dicom_input,
    png_input,
    video_input,
)
from usqa.service.frames.decode import (
    decode_bytes,
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
    EMPTY_IMAGE,
    EMPTY_INPUT,
    FRAME_TOO_LARGE,
    NO_PIXEL_DATA,
    RAW_SIZE_MISMATCH,
    RAW_SIZE_REQUIRED,
    TOO_MANY_FRAMES,
    UNRECOGNISED_BYTES,
    UNRECOGNISED_FILE,
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

MALFORMED: list[tuple[str, MakeInput, dict[str, Any], type[FrameError], str]] = [
    ("empty-bytes", lambda b, t: b"", {}, EmptyFrameError, EMPTY_INPUT),
    ("empty-file", file_input("empty.png", lambda b: b""), {}, EmptyFrameError, EMPTY_INPUT),
    (
        "random-garbage",
        lambda b, t: np.random.default_rng(7).bytes(2048),
        {},
        UnsupportedFormatError,
        UNRECOGNISED_BYTES,
    ),
    (
        "garbage-file",
        file_input("notes.txt", lambda b: b"just some text\n"),
        {},
        UnsupportedFormatError,
        UNRECOGNISED_FILE.format(name="notes.txt"),
    ),
    (
        "truncated-png",
        lambda b, t: png_input(b)[: len(png_input(b)) // 2],
        {},
        CorruptFrameError,
        CORRUPT_IMAGE.format(kind="PNG"),
    ),
    (
        "truncated-png-header",
        lambda b, t: png_input(b)[:20],
        {},
        CorruptFrameError,
        CORRUPT_HEADER.format(kind="PNG"),
    ),
    (
        "truncated-jpeg",
        lambda b, t: jpeg_input(b)[: len(jpeg_input(b)) // 2],
        {},
        CorruptFrameError,
        CORRUPT_IMAGE.format(kind="JPEG"),
    ),
    (
        "truncated-jpeg-end-marker",
        lambda b, t: jpeg_input(b)[:-2],
        {},
        CorruptFrameError,
        CORRUPT_IMAGE.format(kind="JPEG"),
    ),
    (
        "jpeg-cut-before-frame-header",
        lambda b, t: jpeg_input(b)[:10],
        {},
        CorruptFrameError,
        CORRUPT_HEADER.format(kind="JPEG"),
    ),
    (
        "bit-flipped-png-ihdr",  # bit depth 8 -> 9: the header CRC no longer matches
        lambda b, t: b.flip_bit(png_input(b), 24),
        {},
        CorruptFrameError,
        CORRUPT_IMAGE.format(kind="PNG"),
    ),
    (
        "bit-flipped-png-signature",
        lambda b, t: b.flip_bit(png_input(b), 1),
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
        lambda b, t: dicom_input(b, no_pixels=True),
        {"media_type": "application/dicom"},
        NoPixelDataError,
        NO_PIXEL_DATA,
    ),
    (
        "dicom-declaring-60000x60000",
        lambda b, t: huge_dicom_input(b),
        {"media_type": "application/dicom"},
        FrameTooLargeError,
        FRAME_TOO_LARGE.format(width=60_000, height=60_000, max_pixels=MAX_PIXELS),
    ),
    (
        "dicom-lying-frame-count",
        lambda b, t: lying_dicom_input(b),
        {"media_type": "application/dicom"},
        CorruptFrameError,
        DICOM_SHORT_PIXEL_DATA.format(expected=10 * 45 * 71, actual=2 * 45 * 71),
    ),
    (
        "dicom-too-many-frames",
        lambda b, t: dicom_input(b, np.zeros((5, 8, 8), dtype=np.uint8), NumberOfFrames=5),
        {"max_frames": 4},
        TooManyFramesError,
        TOO_MANY_FRAMES.format(max_frames=4),
    ),
    (
        "dicom-zero-frames",
        lambda b, t: dicom_input(b, NumberOfFrames=0),
        {},
        CorruptFrameError,
        DICOM_BAD_ATTRIBUTE.format(keyword="NumberOfFrames"),
    ),
    (
        "dicom-unreadable-frame-count",
        lambda b, t: dicom_input(b, NumberOfFrames=1).replace(b"IS\x02\x001 ", b"IS\x02\x001A"),
        {},
        CorruptFrameError,
        DICOM_BAD_ATTRIBUTE.format(keyword="NumberOfFrames"),
    ),
    (
        "dicom-unsupported-photometric",
        lambda b, t: dicom_input(b, PhotometricInterpretation="HSV"),
        {},
        UnsupportedFormatError,
        UNSUPPORTED_PHOTOMETRIC.format(value="HSV"),
    ),
    (
        "dicom-mpeg2-transfer-syntax",
        lambda b, t: mpeg2_dicom_input(b),
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
        file_input("bundled-broken.dcm", lambda b: b.bundled_dicom_files()["JPEG-lossy.dcm"].read_bytes()),
        {},
        CorruptFrameError,
        DICOM_UNDECODABLE,
    ),
    (
        "unknown-media-type",
        lambda b, t: png_input(b),
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
        lambda b, t: jpeg_input(b),
        {"media_type": "image/png"},
        CorruptFrameError,
        CONTENT_MISMATCH.format(media_type="image/png", kind="PNG"),
    ),
    (
        "dicom-media-type-on-png",
        lambda b, t: png_input(b),
        {"media_type": "application/dicom"},
        CorruptFrameError,
        CONTENT_MISMATCH.format(media_type="application/dicom", kind="DICOM"),
    ),
    (
        "video-that-is-not-a-video",
        file_input("clip.mp4", lambda b: b"\x00\x00\x00\x18ftypmp42" + b"not really a movie" * 20),
        {},
        CorruptFrameError,
        CORRUPT_VIDEO.format(name="clip.mp4"),
    ),
    (
        "video-too-many-frames",
        video_input("long.avi", frames=6),
        {"max_frames": 5},
        TooManyFramesError,
        TOO_MANY_FRAMES.format(max_frames=5),
    ),
    (
        "video-frames-too-large",
        video_input("wide.avi", frames=1, width=64),
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
