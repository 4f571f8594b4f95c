"""Video files (.mp4 .avi .mov .mkv) as 8-bit grayscale frames through OpenCV's FFmpeg backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from usqa.service.frames.errors import (
    CORRUPT_VIDEO,
    FRAME_TOO_LARGE,
    TOO_MANY_FRAMES,
    CorruptFrameError,
    FrameTooLargeError,
    TooManyFramesError,
)

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv"})
_RIFF = b"RIFF"
_AVI = b"AVI "
_ISO_MEDIA_BOX = b"ftyp"  # MP4 and QuickTime: a file-type box at offset 4
_MATROSKA = b"\x1a\x45\xdf\xa3"  # EBML header of Matroska / WebM


def looks_like_video(path: Path, head: bytes) -> bool:
    """A video by its container magic, or by extension (QuickTime files may open with other boxes)."""
    return (
        (head.startswith(_RIFF) and head[8:12] == _AVI)
        or head[4:8] == _ISO_MEDIA_BOX
        or head.startswith(_MATROSKA)
        or path.suffix.lower() in VIDEO_SUFFIXES
    )


def iter_video_frames(path: Path, *, max_pixels: int, max_frames: int) -> Iterator[np.ndarray]:
    """Open and check the video now (frame size, declared frame count), then yield uint8 grayscale frames.

    The declared count is only a container estimate, so the limit is enforced again while reading: the
    frame after the `max_frames`-th raises TooManyFramesError. A video that yields no frame is corrupt.
    """
    # FFmpeg explicitly: the default backend list includes an image-sequence reader that would treat a
    # name like "scan%03d.png" as a pattern of other files.
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        if not capture.isOpened():
            raise CorruptFrameError(CORRUPT_VIDEO.format(name=path.name))
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if width <= 0 or height <= 0:
            raise CorruptFrameError(CORRUPT_VIDEO.format(name=path.name))
        if width * height > max_pixels:
            raise FrameTooLargeError(
                FRAME_TOO_LARGE.format(width=width, height=height, max_pixels=max_pixels)
            )
        if int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) > max_frames:
            raise TooManyFramesError(TOO_MANY_FRAMES.format(max_frames=max_frames))
    except BaseException:
        capture.release()
        raise
    return _read_frames(capture, path, max_pixels=max_pixels, max_frames=max_frames)


def _read_frames(
    capture: cv2.VideoCapture, path: Path, *, max_pixels: int, max_frames: int
) -> Iterator[np.ndarray]:
    count = 0
    try:
        while True:
            try:
                grabbed, frame = capture.read()
            except cv2.error as exc:
                raise CorruptFrameError(CORRUPT_VIDEO.format(name=path.name)) from exc
            if not grabbed or frame is None:
                break
            count += 1
            if count > max_frames:
                raise TooManyFramesError(TOO_MANY_FRAMES.format(max_frames=max_frames))
            height, width = frame.shape[:2]
            if width * height > max_pixels:  # a stream may change size after the header
                raise FrameTooLargeError(
                    FRAME_TOO_LARGE.format(width=width, height=height, max_pixels=max_pixels)
                )
            yield frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    finally:
        capture.release()
    if count == 0:
        raise CorruptFrameError(CORRUPT_VIDEO.format(name=path.name))
