from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest

from usqa.contracts.frames import FrameSpec
from usqa.service.frames.errors import EMPTY_IMAGE, UNSUPPORTED_ARRAY, EmptyFrameError, UnsupportedFormatError
from usqa.service.frames.preprocess import (
    find_scan_region,
    letterbox,
    prepare_frame,
    prepare_frames,
    to_grayscale_u8,
)

Build = Any  # the conftest `build` fixture (FrameBuilders)
# How far the detected box may stray from the drawn sector: the blur spreads its edge by a pixel or two.
BOX_TOLERANCE = 3


# --- to_grayscale_u8 -------------------------------------------------------------------------------------


def test_uint8_gray_is_kept_as_is() -> None:
    image = np.arange(12, dtype=np.uint8).reshape(3, 4)
    np.testing.assert_array_equal(to_grayscale_u8(image), image)


def test_uint16_maps_its_full_range() -> None:
    image = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    np.testing.assert_array_equal(to_grayscale_u8(image), [[0, 1, 128, 255]])


def test_float_is_read_as_unit_intensity_clipped_and_nan_safe() -> None:
    image = np.array([[0.0, 0.5, 1.0, 2.0, -1.0, np.nan]], dtype=np.float32)
    np.testing.assert_array_equal(to_grayscale_u8(image), [[0, 128, 255, 255, 0, 0]])


def test_bool_is_black_and_white() -> None:
    np.testing.assert_array_equal(to_grayscale_u8(np.array([[True, False]])), [[255, 0]])


def test_signed_integers_are_min_max_scaled() -> None:
    image = np.array([[-1000, 0, 1000]], dtype=np.int16)
    np.testing.assert_array_equal(to_grayscale_u8(image), [[0, 128, 255]])


def test_constant_signed_image_is_black_not_a_division_by_zero() -> None:
    np.testing.assert_array_equal(to_grayscale_u8(np.full((2, 2), 7, dtype=np.int32)), np.zeros((2, 2)))


@pytest.mark.parametrize(
    ("rgb", "luminance"),
    [((255, 0, 0), 76), ((0, 255, 0), 150), ((0, 0, 255), 29), ((255, 255, 255), 255)],
    ids=["red", "green", "blue", "white"],
)
def test_colour_becomes_rec601_luminance(rgb: tuple[int, int, int], luminance: int) -> None:
    image = np.broadcast_to(np.array(rgb, dtype=np.uint8), (2, 3, 3))
    gray = to_grayscale_u8(image)
    assert gray.shape == (2, 3)
    assert np.all(gray == luminance)


def test_rgba_drops_alpha_and_single_channel_drops_its_axis() -> None:
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., 1] = 255
    assert np.all(to_grayscale_u8(rgba) == 150)
    assert to_grayscale_u8(np.zeros((5, 6, 1), dtype=np.uint8)).shape == (5, 6)


def test_result_is_c_contiguous_even_for_a_strided_view() -> None:
    view = np.zeros((10, 10, 3), dtype=np.uint8)[::2, ::3]
    assert to_grayscale_u8(view).flags.c_contiguous


@pytest.mark.parametrize(
    "image",
    [np.zeros(5, np.uint8), np.zeros((2, 2, 2), np.uint8), np.zeros((2, 2, 3, 1), np.uint8)],
    ids=["1d", "two-channels", "4d"],
)
def test_unsupported_layouts_are_typed_errors(image: np.ndarray) -> None:
    with pytest.raises(UnsupportedFormatError) as caught:
        to_grayscale_u8(image)
    assert str(caught.value) == UNSUPPORTED_ARRAY.format(shape=image.shape, dtype=image.dtype)


def test_unsupported_dtype_is_a_typed_error() -> None:
    image = np.zeros((2, 2), dtype=np.complex64)
    with pytest.raises(UnsupportedFormatError):
        to_grayscale_u8(image)


@pytest.mark.parametrize("shape", [(0, 5), (5, 0), (0, 0, 3)])
def test_zero_size_arrays_are_empty_frames(shape: tuple[int, ...]) -> None:
    with pytest.raises(EmptyFrameError) as caught:
        to_grayscale_u8(np.zeros(shape, dtype=np.uint8))
    assert str(caught.value) == EMPTY_IMAGE.format(width=shape[1], height=shape[0])
    assert caught.value.code == "empty_frame"


# --- letterbox and prepare_frame -------------------------------------------------------------------------


def test_letterbox_centres_and_puts_an_odd_leftover_bottom_right() -> None:
    square = letterbox(np.full((2, 5), 9, dtype=np.uint8))
    assert square.shape == (5, 5)
    np.testing.assert_array_equal(square[:, 0], [0, 9, 9, 0, 0])
    tall = letterbox(np.full((4, 1), 9, dtype=np.uint8))
    np.testing.assert_array_equal(tall[0], [0, 9, 0, 0])


@pytest.mark.parametrize(
    "shape",
    [(1, 1), (3, 7), (7, 3), (127, 129), (480, 640), (1080, 1920), (1, 999), (999, 1), (600, 800, 3)],
)
@pytest.mark.parametrize("size", [128, 31])
def test_prepare_frame_has_the_exact_model_input_shape(shape: tuple[int, ...], size: int) -> None:
    rng = np.random.default_rng(0)
    frame = prepare_frame(rng.integers(0, 256, shape, dtype=np.uint8), FrameSpec(size=size))
    assert frame.shape == (size, size)
    assert frame.dtype == np.uint8
    assert frame.flags.c_contiguous


def test_prepare_frame_letterbox_is_centred() -> None:
    wide = np.full((100, 300), 200, dtype=np.uint8)  # 1:3, so two black bands of 100 rows each
    frame = prepare_frame(wide, FrameSpec(size=129))
    content_rows = np.flatnonzero(frame.mean(axis=1) > 100)
    top_band = content_rows[0]
    bottom_band = frame.shape[0] - 1 - content_rows[-1]
    assert abs(top_band - bottom_band) <= 1
    assert 41 <= len(content_rows) <= 45  # 129 / 3 = 43 rows of content
    assert np.all(frame[content_rows[1:-1]] == 200)  # INTER_AREA averages, so inner rows are exact


def test_prepare_frame_is_deterministic_and_leaves_its_input_alone(build: Build) -> None:
    screen, _ = build.screen_capture()
    before = screen.copy()
    spec = FrameSpec(size=96, crop="auto")
    np.testing.assert_array_equal(prepare_frame(screen, spec), prepare_frame(screen, spec))
    np.testing.assert_array_equal(screen, before)


def test_prepare_frame_uses_inter_area_after_letterboxing() -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (300, 200), dtype=np.uint8)
    padded = np.zeros((300, 300), dtype=np.uint8)
    padded[:, 50:250] = image
    expected = cv2.resize(padded, (64, 64), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(prepare_frame(image, FrameSpec(size=64)), expected)


def test_prepare_frames_stacks_and_accepts_none() -> None:
    frames = [np.zeros((10, 20), np.uint8), np.full((30, 10, 3), 255, np.uint8)]
    batch = prepare_frames(iter(frames), FrameSpec(size=16))
    assert batch.shape == (2, 16, 16)
    assert batch.dtype == np.uint8
    assert prepare_frames([], FrameSpec(size=16)).shape == (0, 16, 16)


# --- find_scan_region ------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auto_crop_finds_the_fan_despite_ui_clutter(build: Build, seed: int) -> None:
    screen, expected = build.screen_capture(seed)
    found = find_scan_region(screen)
    assert np.max(np.abs(np.subtract(found, expected))) <= BOX_TOLERANCE, (found, expected)


def test_auto_crop_changes_what_the_model_sees(build: Build) -> None:
    screen, (y0, y1, x0, x1) = build.screen_capture()
    cropped = prepare_frame(screen, FrameSpec(size=64, crop="auto"))
    by_hand = prepare_frame(screen[y0:y1, x0:x1], FrameSpec(size=64))
    assert np.mean(np.abs(cropped.astype(int) - by_hand.astype(int))) < 3
    assert not np.array_equal(cropped, prepare_frame(screen, FrameSpec(size=64)))


def test_all_black_frame_is_returned_whole() -> None:
    black = np.zeros((480, 640), dtype=np.uint8)
    assert find_scan_region(black) == (0, 480, 0, 640)
    np.testing.assert_array_equal(prepare_frame(black, FrameSpec(size=32, crop="auto")), np.zeros((32, 32)))


def test_text_and_bars_alone_do_not_count_as_a_scan() -> None:
    screen = np.zeros((480, 640), dtype=np.uint8)
    cv2.rectangle(screen, (0, 0), (639, 24), 90, thickness=-1)
    cv2.rectangle(screen, (600, 60), (614, 400), 255, thickness=-1)
    cv2.putText(screen, "Gn 62  DR 60  14cm", (20, 200), cv2.FONT_HERSHEY_SIMPLEX, 0.8, 255, 2)
    assert find_scan_region(screen) == (0, 480, 0, 640)


def test_a_frame_that_is_all_scan_is_kept_whole() -> None:
    rng = np.random.default_rng(3)
    scan = rng.integers(40, 255, (120, 160), dtype=np.uint8)
    assert find_scan_region(scan) == (0, 120, 0, 160)


def test_an_empty_frame_has_no_scan_region() -> None:
    with pytest.raises(EmptyFrameError):
        find_scan_region(np.zeros((0, 10), dtype=np.uint8))


def test_tiny_frames_do_not_crash_the_crop() -> None:
    for shape in [(1, 1), (2, 9), (9, 2)]:
        frame = prepare_frame(np.full(shape, 255, dtype=np.uint8), FrameSpec(size=8, crop="auto"))
        assert frame.shape == (8, 8)
