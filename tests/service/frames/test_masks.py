from __future__ import annotations

import cv2
import numpy as np
import pytest

from usqa.service.frames import FrameSpec, prepare_frame, prepare_mask


def test_mask_follows_the_frames_crop_and_letterbox() -> None:
    # A bright scan rectangle inside a black screen capture, with a dark "gland" whose mask we know.
    frame = np.zeros((240, 320), np.uint8)
    frame[40:200, 60:300] = 180
    cv2.circle(frame, (180, 120), 30, 40, -1)
    mask = np.zeros_like(frame, dtype=bool)
    cv2.circle(mask.view(np.uint8), (180, 120), 30, 1, -1)
    for crop in ("none", "auto"):
        spec = FrameSpec(size=64, crop=crop)
        prepared = prepare_frame(frame, spec)
        prepared_mask = prepare_mask(mask, frame, spec)
        assert prepared_mask.shape == (64, 64) and prepared_mask.dtype == bool
        # The mask covers exactly the dark disc of the prepared frame, up to a one-pixel rim.
        disc = prepared < 110
        scan = prepared > 0
        overlap = (prepared_mask & disc & scan).sum() / prepared_mask.sum()
        assert overlap > 0.9


def test_mask_of_another_size_is_refused() -> None:
    with pytest.raises(ValueError, match="mask is 4x4 but its frame is 8x8"):
        prepare_mask(np.zeros((4, 4), bool), np.zeros((8, 8), np.uint8), FrameSpec(size=8))
