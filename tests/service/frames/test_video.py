from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from usqa.service.frames.errors import (
    TOO_MANY_FRAMES,
    FrameTooLargeError,
    TooManyFramesError,
)
from usqa.service.frames.video import iter_video_frames, looks_like_video

Build = Any  # the conftest `build` fixture (FrameBuilders)
LEVELS = (20, 80, 140, 200, 250)


@pytest.fixture
def clip(build: Build, tmp_path: Path) -> Path:
    """Five 48x64 frames of rising brightness, Motion-JPEG in AVI."""
    frames = [np.full((48, 64), level, dtype=np.uint8) for level in LEVELS]
    return build.write_video(tmp_path / "clip.avi", frames)


def test_a_written_video_reads_back_frame_for_frame(clip: Path) -> None:
    frames = list(iter_video_frames(clip, max_pixels=10_000, max_frames=10))
    assert len(frames) == len(LEVELS)
    for frame, level in zip(frames, LEVELS, strict=True):
        assert frame.shape == (48, 64)
        assert frame.dtype == np.uint8
        assert abs(float(frame.mean()) - level) < 4  # Motion-JPEG is lossy


def test_limits_are_checked_when_the_video_is_opened(clip: Path) -> None:
    with pytest.raises(TooManyFramesError) as caught:
        iter_video_frames(clip, max_pixels=10_000, max_frames=4)  # no next() needed
    assert str(caught.value) == TOO_MANY_FRAMES.format(max_frames=4)
    with pytest.raises(FrameTooLargeError):
        iter_video_frames(clip, max_pixels=48 * 64 - 1, max_frames=10)


def test_a_video_is_recognised_by_container_or_extension(tmp_path: Path) -> None:
    assert looks_like_video(tmp_path / "x", b"RIFF\x00\x00\x00\x00AVI LIST")
    assert looks_like_video(tmp_path / "x", b"\x00\x00\x00\x18ftypmp42")
    assert looks_like_video(tmp_path / "x", b"\x1a\x45\xdf\xa3\x01")
    assert looks_like_video(tmp_path / "scan.MOV", b"\x00" * 12)
    assert not looks_like_video(tmp_path / "notes.txt", b"hello world!")
