"""Frames that are not the model's task (blank, saturated, noise, a checkerboard, pydicom's cardiac echo) and
the service's own judgement of a batch of images, for the out-of-scope tests of a fixture export and of the
shipped model."""

from __future__ import annotations

import cv2
import numpy as np
import pydicom.examples

from usqa.service.frames import decode_bytes
from usqa.service.inference.geometry import prepare_with_geometry, stack_pixels
from usqa.service.inference.model import LoadedModel
from usqa.service.inference.scoring import ScoredFrame, ScoringOptions, score_outputs

LIMITS = {"width": None, "height": None, "max_pixels": 1 << 24, "max_frames": 64}


def synthetic_frames() -> list[np.ndarray]:
    """Black, white, uniform noise and a checkerboard, decoded from PNG as an upload would be."""
    yy, xx = np.mgrid[0:240, 0:320]
    images = [
        np.zeros((240, 320), np.uint8),
        np.full((240, 320), 255, np.uint8),
        np.random.default_rng(0).integers(0, 256, (240, 320), dtype=np.uint8),
        (((yy // 16 + xx // 16) % 2) * 255).astype(np.uint8),
    ]
    pngs = [cv2.imencode(".png", image)[1].tobytes() for image in images]
    return [decode_bytes(png, "image/png", **LIMITS)[0] for png in pngs]  # type: ignore[arg-type]


def cardiac_echo() -> list[np.ndarray]:
    """The 30 frames of pydicom's bundled cardiac ultrasound cine."""
    return decode_bytes(pydicom.examples.get_path("ybr_color").read_bytes(), None, **LIMITS)  # type: ignore[arg-type]


def judge(model: LoadedModel, images: list[np.ndarray]) -> list[ScoredFrame]:
    """Every image as the service scores it: prepared, both graphs, the verdict."""
    prepared = [prepare_with_geometry(image, model.spec) for image in images]
    return score_outputs(model, model.run(stack_pixels(prepared)), prepared, ScoringOptions())
