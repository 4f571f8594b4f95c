"""Decode budgets enforced while decoding (issue 28): frames counted from the pixel data, decoded pixels
per input, deflated data sets inflated with a cap. Every hostile file is refused before it is decoded."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from tests.support import hostile_dicom
from usqa.service.frames import (
    CorruptFrameError,
    DecodeBudgetError,
    FrameTooLargeError,
    TooManyFramesError,
    decode_bytes,
    read_frames,
)
from usqa.service.frames.decode import within_budget

LIMITS = {"max_pixels": 4096 * 4096, "max_frames": 5000, "max_decoded_pixels": 128 * 1024 * 1024}
REFUSAL_S = 1.0


def refused(data: bytes, error: type[Exception], **limits: int) -> str:
    started = time.perf_counter()
    with pytest.raises(error) as raised:
        decode_bytes(data, **{**LIMITS, **limits})
    assert time.perf_counter() - started < REFUSAL_S
    return str(raised.value)


def test_native_pixel_data_holding_more_frames_than_the_limit_is_refused() -> None:
    message = refused(hostile_dicom.excess_frames(6000, side=8), TooManyFramesError)
    assert "holds 6000 frames" in message and "limit of 5000" in message


def test_an_offset_table_listing_more_frames_than_the_limit_is_refused() -> None:
    message = refused(hostile_dicom.offset_table_frames(6000), TooManyFramesError)
    assert "holds 6000 frames" in message


def test_excess_frames_within_the_limit_are_not_decoded() -> None:
    frames = decode_bytes(hostile_dicom.excess_frames(50, side=8, declared=2), **LIMITS)
    assert len(frames) == 2


def test_a_deflated_file_that_inflates_past_its_header_is_refused_while_inflating() -> None:
    data = hostile_dicom.excess_frames(16384, side=32, deflated=True)  # 16 MiB of pixels
    assert len(data) < 20_000
    message = refused(data, DecodeBudgetError)
    assert "inflates past" in message


def test_an_honest_deflated_cine_decodes() -> None:
    frames = decode_bytes(hostile_dicom.excess_frames(3, side=32, declared=3, deflated=True), **LIMITS)
    assert [frame.shape for frame in frames] == [(32, 32)] * 3


def test_huge_compressed_frames_are_refused_from_the_header() -> None:
    message = refused(hostile_dicom.huge_compressed_frames(40, 4096), DecodeBudgetError)
    assert "40 frames of 4096x4096" in message and str(LIMITS["max_decoded_pixels"]) in message


def test_the_budget_is_a_413_kind_of_error_naming_its_code() -> None:
    assert issubclass(DecodeBudgetError, FrameTooLargeError)
    assert DecodeBudgetError.code == "decode_budget_exceeded"


def test_the_budget_counts_decoded_frames_of_a_file(tmp_path: Path) -> None:
    path = tmp_path / "cine.dcm"
    path.write_bytes(hostile_dicom.excess_frames(4, side=8, declared=4))
    with pytest.raises(DecodeBudgetError):
        list(read_frames(path, max_pixels=64, max_frames=10, max_decoded_pixels=3 * 64))
    assert len(list(read_frames(path, max_pixels=64, max_frames=10, max_decoded_pixels=4 * 64))) == 4


def test_within_budget_stops_at_the_frame_that_passes_it() -> None:
    frames = (np.zeros((10, 10), np.uint8) for _ in range(5))
    seen = []
    with pytest.raises(DecodeBudgetError, match="3 frames of 10x10 are 300 pixels"):
        seen.extend(within_budget(frames, 250))
    assert len(seen) == 2


def test_one_frame_per_message_counts_before_decoding() -> None:
    with pytest.raises(TooManyFramesError) as raised:
        decode_bytes(hostile_dicom.excess_frames(16384, side=2), **{**LIMITS, "max_frames": 1})
    assert raised.value.frames == 16384


def test_a_codestream_larger_than_its_header_is_refused_before_decoding() -> None:
    data = hostile_dicom.undersized_header_j2k(64, 4096)
    message = refused(data, CorruptFrameError)
    assert "encoded as 4096x4096 but the header declares 64x64" in message


def test_honest_jpeg_2000_frames_pass_the_codestream_check() -> None:
    frames = decode_bytes(hostile_dicom.zero_j2k_frames(2, 64), **LIMITS)
    assert [frame.shape for frame in frames] == [(64, 64)] * 2
