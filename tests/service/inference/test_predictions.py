from __future__ import annotations

import base64

import cv2
import numpy as np

from usqa.service.inference.geometry import FrameGeometry
from usqa.service.inference.predictions import classify, segment


def test_classify_picks_the_most_probable_class() -> None:
    p = classify(np.array([0.2, 0.7, 0.1], dtype=np.float32), ["a", "b", "c"])
    assert (p.label, round(p.probability, 6)) == ("b", 0.7)
    assert p.probabilities == {"a": 0.2, "b": 0.7, "c": 0.1}


def test_mask_area_box_outline_and_png_are_in_source_pixels() -> None:
    # Source 200 x 100 (w x h), input 100 x 100: 2 source pixels per input pixel, 25 rows of padding on top.
    geometry = FrameGeometry(source_width=200, source_height=100, crop=(0, 100, 0, 200), input_size=100)
    probability = np.zeros((100, 100), dtype=np.float32)
    probability[35:45, 10:30] = 0.9  # input rows 35-44, columns 10-29
    p = segment(probability, geometry, outline=True, png=True)
    assert p.area_fraction == (10 * 20) / (50 * 100)
    assert p.bounding_box is not None
    assert (p.bounding_box.x, p.bounding_box.y, p.bounding_box.width, p.bounding_box.height) == (
        20,
        20,
        40,
        20,
    )
    assert p.outlines is not None and len(p.outlines) == 1
    xs = [x for x, _ in p.outlines[0]]
    ys = [y for _, y in p.outlines[0]]
    assert min(xs) >= 20 and max(xs) <= 60 and min(ys) >= 20 and max(ys) <= 40
    assert p.mask_png_base64 is not None
    mask = cv2.imdecode(np.frombuffer(base64.b64decode(p.mask_png_base64), np.uint8), cv2.IMREAD_GRAYSCALE)
    assert mask.shape == (100, 200)
    assert set(np.unique(mask)) == {0, 255}
    assert mask[30, 40] == 255 and mask[10, 40] == 0 and mask[30, 100] == 0


def test_an_empty_mask_has_no_box() -> None:
    geometry = FrameGeometry(source_width=64, source_height=64, crop=(0, 64, 0, 64), input_size=64)
    p = segment(np.zeros((64, 64), dtype=np.float32), geometry, outline=True)
    assert p.area_fraction == 0.0 and p.bounding_box is None and p.outlines == [] and p.mask_png is None
