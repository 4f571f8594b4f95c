from __future__ import annotations

import numpy as np
import pytest

from usqa.service.frames import FrameSpec, prepare_frame
from usqa.service.inference.geometry import FrameGeometry, prepare_with_geometry, stack_pixels


def _capture() -> np.ndarray:
    """A screen capture: black surround, a bright textured scan region, a text-like strip."""
    rng = np.random.default_rng(3)
    image = np.zeros((240, 320), dtype=np.uint8)
    image[40:200, 90:260] = rng.integers(60, 200, (160, 170), dtype=np.uint8)
    image[5:9, 10:80] = 255
    return image


@pytest.mark.parametrize("crop", ["none", "auto"])
def test_pixels_are_exactly_the_shared_preprocessing(crop: str) -> None:
    spec = FrameSpec(size=64, crop=crop)  # type: ignore[arg-type]
    prepared = prepare_with_geometry(_capture(), spec)
    np.testing.assert_array_equal(prepared.pixels, prepare_frame(_capture(), spec))
    assert prepared.geometry.input_size == 64
    if crop == "auto":
        # The scan region, give or take the blur the region finder applies.
        np.testing.assert_allclose(prepared.geometry.crop, (40, 200, 90, 260), atol=4)
    else:
        assert prepared.geometry.crop == (0, 240, 0, 320)


def test_input_points_map_back_to_source_pixels() -> None:
    # 200 wide, 100 high: letterboxed into a 200 x 200 square with 50 rows of padding above.
    geometry = FrameGeometry(source_width=200, source_height=100, crop=(0, 100, 0, 200), input_size=100)
    assert geometry.scale == 2.0
    assert geometry.content == (25, 75, 0, 100)
    points = geometry.to_source(np.array([[0.0, 25.0], [100.0, 75.0], [50.0, 0.0]]))
    np.testing.assert_allclose(points, [[0, 0], [200, 100], [100, 0]])  # the last one clipped into the frame


def test_signal_levels_are_measured_on_the_model_input() -> None:
    dark = prepare_with_geometry(np.zeros((50, 50), dtype=np.uint8), FrameSpec(size=32))
    assert dark.mean_level == 0.0 and dark.std_level == 0.0
    bright = prepare_with_geometry(_capture(), FrameSpec(size=32))
    assert bright.mean_level > 10 and bright.std_level > 10


def test_stacking_one_frame_is_a_view() -> None:
    prepared = prepare_with_geometry(_capture(), FrameSpec(size=32))
    single = stack_pixels([prepared])
    assert single.shape == (1, 32, 32) and np.shares_memory(single, prepared.pixels)
    assert stack_pixels([prepared, prepared]).shape == (2, 32, 32)
