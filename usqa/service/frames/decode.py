"""Bytes and files to uint8 grayscale frames: the single entry point for uploads, DICOM, video and folders.

Every failure is a `FrameError` subclass with a constant message; whatever OpenCV or pydicom raise on
bad input is wrapped, the original kept as `__cause__`. Sizes declared in headers are checked against
`max_pixels` (per frame) and `max_frames` before pixel data is decoded, and `max_decoded_pixels` (frames x
width x height of one input, None for no bound beyond the other two) from headers and again as frames are
decoded; callers pass them explicitly (from `usqa.service.settings.get_settings()`), nothing here reads
settings.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final, cast

import cv2
import numpy as np

from usqa.service.frames.dicom import decode_dicom, iter_dicom_frames
from usqa.service.frames.errors import (
    CONTENT_MISMATCH,
    CORRUPT_IMAGE,
    DECODE_BUDGET,
    DECODE_TOO_SLOW,
    EMPTY_FOLDER,
    EMPTY_IMAGE,
    EMPTY_INPUT,
    FRAME_TOO_LARGE,
    RAW_SIZE_MISMATCH,
    RAW_SIZE_REQUIRED,
    TOO_MANY_FRAMES,
    UNRECOGNISED_BYTES,
    UNRECOGNISED_FILE,
    UNRECOGNISED_IMAGE,
    UNSUPPORTED_MEDIA_TYPE,
    CorruptFrameError,
    DecodeBudgetError,
    DecodeTimeoutError,
    EmptyFrameError,
    FrameTooLargeError,
    RawSizeMismatchError,
    TooManyFramesError,
    UnsupportedFormatError,
    cut,
    shown,
)
from usqa.service.frames.headers import (
    KIND_NAMES,
    SNIFF_LENGTH,
    ImageKind,
    SniffedKind,
    declared_size,
    jpeg_is_complete,
    sniff_format,
)
from usqa.service.frames.video import iter_video_frames, looks_like_video

__all__ = [
    "MEDIA_TYPES",
    "RAW_MEDIA_TYPE",
    "declared_image_size",
    "decode_bytes",
    "decode_dicom",
    "decode_image_bytes",
    "decode_raw",
    "iter_source_frames",
    "iter_video_frames",
    "jpeg_reduction",
    "read_frames",
    "sniff_format",
]

RAW_MEDIA_TYPE: Final = "application/octet-stream"
MEDIA_TYPES: Final[dict[str, SniffedKind]] = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/bmp": "bmp",
    "image/tiff": "tiff",
    "application/dicom": "dicom",
    # Names that common clients send for the same formats.
    "image/jpg": "jpeg",
    "image/x-ms-bmp": "bmp",
}
IMAGE_KINDS: Final = frozenset({"png", "jpeg", "bmp", "tiff"})
# DICOMDIR is a DICOM index of other files, never an image; it sits beside the images it indexes.
_FOLDER_INDEX_NAMES = frozenset({"DICOMDIR"})


# JPEG decoding at 1/2, 1/4 or 1/8 scale in the DCT domain (libjpeg-turbo's scale_denom, which OpenCV's
# IMREAD_REDUCED_* flags set): the inverse DCT runs on fewer coefficients, several times cheaper than a full
# decode followed by a resize. A reduction is taken only while the longer side stays at least
# JPEG_REDUCTION_MARGIN times the model input's side: measured on simulated frames in 640x480 and 1920x1080
# JPEGs (quality 90) at 64 px, the model input then differs from the full decode's by at most 2 grey levels,
# 0.02 on average (1/8 of a 1920-wide frame, 240 px, already differs by up to 28; tests/service/frames).
JPEG_REDUCTION_MARGIN: Final = 4
_REDUCED_FLAGS: Final = {
    1: cv2.IMREAD_GRAYSCALE,
    2: cv2.IMREAD_REDUCED_GRAYSCALE_2,
    4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
    8: cv2.IMREAD_REDUCED_GRAYSCALE_8,
}


def jpeg_reduction(width: int, height: int, input_size: int | None) -> int:
    """The DCT scale denominator (1, 2, 4 or 8) to decode a `width` x `height` JPEG at for a model input of
    `input_size` (None: 1, a full decode)."""
    if input_size is None:
        return 1
    longer = max(width, height)
    return max((r for r in _REDUCED_FLAGS if longer >= r * JPEG_REDUCTION_MARGIN * input_size), default=1)


def decode_image_bytes(data: bytes, *, max_pixels: int, input_size: int | None = None) -> np.ndarray:
    """A PNG, JPEG, BMP or TIFF (sniffed by magic bytes; the first page of a TIFF) as uint8 grayscale HxW.

    With `input_size`, a JPEG much larger than the model input is decoded at a reduced scale
    (`jpeg_reduction`)."""
    if not data:
        raise EmptyFrameError(EMPTY_INPUT)
    kind = sniff_format(data)
    if kind is None or kind not in IMAGE_KINDS:
        raise UnsupportedFormatError(UNRECOGNISED_IMAGE)
    image_kind = cast(ImageKind, kind)
    name = KIND_NAMES[image_kind]
    width, height = declared_size(data, image_kind)
    if width == 0 or height == 0:
        raise EmptyFrameError(EMPTY_IMAGE.format(width=width, height=height))
    if width * height > max_pixels:
        raise FrameTooLargeError(FRAME_TOO_LARGE.format(width=width, height=height, max_pixels=max_pixels))
    if image_kind == "jpeg" and not jpeg_is_complete(data):
        raise CorruptFrameError(CORRUPT_IMAGE.format(kind=name))
    try:
        # IMREAD_GRAYSCALE: OpenCV's Rec. 601 luminance, 16-bit scaled to 8, alpha dropped, EXIF applied.
        reduce = jpeg_reduction(width, height, input_size) if image_kind == "jpeg" else 1
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), _REDUCED_FLAGS[reduce])
    except cv2.error as exc:
        raise CorruptFrameError(CORRUPT_IMAGE.format(kind=name)) from exc
    if image is None or image.size == 0:
        raise CorruptFrameError(CORRUPT_IMAGE.format(kind=name))
    return np.ascontiguousarray(image)


def decode_raw(data: bytes, width: int, height: int, *, max_pixels: int) -> np.ndarray:
    """Raw 8-bit grayscale bytes, row-major, no header, as a uint8 HxW array."""
    if not data:
        raise EmptyFrameError(EMPTY_INPUT)
    if width <= 0 or height <= 0:
        raise EmptyFrameError(EMPTY_IMAGE.format(width=width, height=height))
    if width * height > max_pixels:
        raise FrameTooLargeError(FRAME_TOO_LARGE.format(width=width, height=height, max_pixels=max_pixels))
    if len(data) != width * height:
        raise RawSizeMismatchError(
            RAW_SIZE_MISMATCH.format(width=width, height=height, expected=width * height, actual=len(data))
        )
    # A copy: np.frombuffer over bytes is read-only, and frames go on to in-place processing.
    return np.frombuffer(data, dtype=np.uint8).reshape(height, width).copy()


def decode_bytes(
    data: bytes,
    media_type: str | None = None,
    *,
    width: int | None = None,
    height: int | None = None,
    max_pixels: int,
    max_frames: int,
    max_decoded_pixels: int | None = None,
    max_decode_s: float | None = None,
    input_size: int | None = None,
) -> list[np.ndarray]:
    """An upload as uint8 grayscale frames (one for an image, all for a DICOM cine).

    `media_type` is one of `MEDIA_TYPES` or `application/octet-stream`; parameters such as
    `; charset=...` are ignored. A declared image or DICOM type must match the bytes' magic. With
    octet-stream or None, `width` and `height` mean raw 8-bit bytes; without them the bytes are sniffed.
    `input_size` (the model input's side) lets a large JPEG decode at a reduced scale (`jpeg_reduction`).
    """
    if not data:
        raise EmptyFrameError(EMPTY_INPUT)
    declared = _declared_kind(media_type)
    if declared is None:
        if width is not None or height is not None:
            if width is None or height is None:
                raise RawSizeMismatchError(RAW_SIZE_REQUIRED)
            return [decode_raw(data, width, height, max_pixels=max_pixels)]
        kind = sniff_format(data)
        if kind is None:
            raise UnsupportedFormatError(UNRECOGNISED_BYTES)
    else:
        kind = sniff_format(data)
        if kind != declared:
            raise CorruptFrameError(
                CONTENT_MISMATCH.format(media_type=_media_essence(media_type), kind=KIND_NAMES[declared])
            )
    if kind == "dicom":
        return decode_dicom(
            data,
            max_pixels=max_pixels,
            max_frames=max_frames,
            max_decoded_pixels=max_decoded_pixels,
            max_decode_s=max_decode_s,
        )
    limit = min(max_pixels, max_decoded_pixels or max_pixels)
    return [decode_image_bytes(data, max_pixels=limit, input_size=input_size)]


def declared_image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) an image's header declares, or None for anything but PNG, JPEG, BMP and TIFF."""
    kind = sniff_format(data)
    if kind is None or kind not in IMAGE_KINDS:
        return None
    return declared_size(data, cast(ImageKind, kind))


def read_frames(
    path: Path,
    *,
    max_pixels: int,
    max_frames: int,
    max_decoded_pixels: int | None = None,
    max_decode_s: float | None = None,
) -> Iterator[np.ndarray]:
    """A file on disk as uint8 grayscale frames: an image (one frame), a DICOM (every frame), a video.

    The kind comes from the content (DICOM files often have no extension), with the extension as a
    fallback for video containers. The header is checked when this is called; frames decode lazily.
    """
    with path.open("rb") as file:
        head = file.read(SNIFF_LENGTH)
    if not head:
        raise EmptyFrameError(EMPTY_INPUT)
    kind = sniff_format(head)
    if kind == "dicom":
        return iter_dicom_frames(
            path,
            max_pixels=max_pixels,
            max_frames=max_frames,
            max_decoded_pixels=max_decoded_pixels,
            max_decode_s=max_decode_s,
        )
    if kind is not None:
        limit = min(max_pixels, max_decoded_pixels or max_pixels)
        return iter([decode_image_bytes(path.read_bytes(), max_pixels=limit)])
    if looks_like_video(path, head):
        frames = iter_video_frames(path, max_pixels=max_pixels, max_frames=max_frames)
        return within_budget(frames, max_decoded_pixels, max_decode_s)
    raise UnsupportedFormatError(UNRECOGNISED_FILE.format(name=shown(path.name)))


def iter_source_frames(path: Path, *, max_pixels: int, max_frames: int) -> Iterator[tuple[str, np.ndarray]]:
    """A file, or a folder of image / DICOM / video files, as (frame_id, frame) pairs, e.g. "a.dcm#12".

    A folder is read in sorted name order and not recursively; subfolders, hidden files and DICOMDIR
    indexes are skipped. `max_frames` bounds the whole source, not each file. A folder with nothing to
    read is an EmptyFrameError rather than zero frames, so a mistyped data path fails loudly; a path
    that does not exist raises the usual OSError.
    """
    files = sorted(entry for entry in path.iterdir() if _is_frame_file(entry)) if path.is_dir() else [path]
    if not files:
        raise EmptyFrameError(EMPTY_FOLDER.format(name=path.name))
    total = 0
    for file in files:
        for index, frame in enumerate(read_frames(file, max_pixels=max_pixels, max_frames=max_frames)):
            total += 1
            if total > max_frames:
                raise TooManyFramesError(TOO_MANY_FRAMES.format(max_frames=max_frames))
            yield f"{file.name}#{index}", frame


def within_budget(
    frames: Iterator[np.ndarray], max_decoded_pixels: int | None, max_decode_s: float | None = None
) -> Iterator[np.ndarray]:
    """`frames` until their pixels pass `max_decoded_pixels` (DecodeBudgetError) or the time `max_decode_s`
    from this call (DecodeTimeoutError, checked between frames); None for either is no limit."""
    deadline = None if max_decode_s is None else time.monotonic() + max_decode_s
    pixels = 0
    for count, frame in enumerate(frames, start=1):
        if deadline is not None and time.monotonic() > deadline:
            raise DecodeTimeoutError(DECODE_TOO_SLOW.format(seconds=max_decode_s, frames=count - 1))
        height, width = int(frame.shape[0]), int(frame.shape[1])
        pixels += height * width
        if max_decoded_pixels is not None and pixels > max_decoded_pixels:
            raise DecodeBudgetError(
                DECODE_BUDGET.format(
                    frames=count,
                    width=width,
                    height=height,
                    pixels=pixels,
                    max_decoded_pixels=max_decoded_pixels,
                )
            )
        yield frame


def _is_frame_file(entry: Path) -> bool:
    return entry.is_file() and not entry.name.startswith(".") and entry.name not in _FOLDER_INDEX_NAMES


def _media_essence(media_type: str | None) -> str:
    """`Image/PNG; charset=x` -> `image/png` (RFC 9110: type names are case-insensitive)."""
    return (media_type or "").split(";", 1)[0].strip().lower()


def _declared_kind(media_type: str | None) -> SniffedKind | None:
    """The kind a media type promises; None for octet-stream or no media type (decided by content)."""
    if media_type is None:
        return None
    essence = _media_essence(media_type)
    if essence == RAW_MEDIA_TYPE:
        return None
    if essence not in MEDIA_TYPES:
        supported = ", ".join([*MEDIA_TYPES, RAW_MEDIA_TYPE])
        raise UnsupportedFormatError(
            UNSUPPORTED_MEDIA_TYPE.format(media_type=cut(media_type), supported=supported)
        )
    return MEDIA_TYPES[essence]
