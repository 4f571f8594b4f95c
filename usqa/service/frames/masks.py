"""Masks through the same geometry as their frame, so a label stays on the pixels it describes."""

from __future__ import annotations

import cv2
import numpy as np

from usqa.contracts.frames import FrameSpec
from usqa.service.frames.preprocess import (
    find_scan_region,
    letterbox,
    to_grayscale_u8,
    within_letterbox_bound,
)

MSG_MASK_SHAPE = "mask is {mask[1]}x{mask[0]} but its frame is {frame[1]}x{frame[0]}"


def prepare_mask(mask: np.ndarray, frame: np.ndarray, spec: FrameSpec) -> np.ndarray:
    """A binary mask of `frame` as bool [spec.size, spec.size], aligned with `prepare_frame(frame, spec)`.

    The crop box is found on the frame (a mask has no scan region of its own); the resize averages (the
    frame's INTER_AREA) and keeps pixels that are mostly foreground, so the mask follows the frame's own
    sampling rather than a nearest-neighbour shift.
    """
    if mask.shape[:2] != frame.shape[:2]:
        raise ValueError(MSG_MASK_SHAPE.format(mask=mask.shape, frame=frame.shape))
    levels = np.where(mask.astype(bool), 255, 0).astype(np.uint8)
    if levels.ndim == 3:
        levels = levels.max(axis=2)
    if spec.crop == "auto":
        y0, y1, x0, x1 = find_scan_region(to_grayscale_u8(frame))
        levels = levels[y0:y1, x0:x1]
    square = letterbox(within_letterbox_bound(levels))  # the frame's own bound, so the two stay aligned
    if square.shape[0] != spec.size:
        square = cv2.resize(square, (spec.size, spec.size), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(square > 127)
