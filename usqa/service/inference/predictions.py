"""Task predictions from raw graph outputs: a class and its probability, or a mask's area, box and outline.

Boxes and outlines are in source-frame pixels (see `FrameGeometry`), so a client draws them straight onto
the frame it sent. The mask itself, when asked for, is a PNG the size of the source frame (0 or 255).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import cv2
import numpy as np

from usqa.service.inference.geometry import FrameGeometry

# A pixel belongs to the structure when its probability reaches this (the predictor's argmax for 2 classes).
MASK_LEVEL = 0.5
# Outline simplification tolerance, in model input pixels; and at most this many outlines (largest first).
OUTLINE_TOLERANCE_PX = 0.75
MAX_OUTLINES = 4


@dataclass(frozen=True)
class ClassPrediction:
    label: str
    probability: float
    probabilities: dict[str, float]


@dataclass(frozen=True)
class BoundingBox:
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class MaskPrediction:
    area_fraction: float
    bounding_box: BoundingBox | None
    outlines: list[list[tuple[float, float]]] | None = None
    mask_png: bytes | None = None

    @property
    def mask_png_base64(self) -> str | None:
        return None if self.mask_png is None else base64.b64encode(self.mask_png).decode("ascii")


Prediction = ClassPrediction | MaskPrediction


def classify(probabilities: np.ndarray, class_names: list[str]) -> ClassPrediction:
    """The most probable class of one frame's probability vector [C]."""
    best = int(np.argmax(probabilities))
    label = class_names[best] if best < len(class_names) else str(best)
    return ClassPrediction(
        label=label,
        probability=float(probabilities[best]),
        probabilities={
            (class_names[i] if i < len(class_names) else str(i)): round(float(p), 6)
            for i, p in enumerate(probabilities)
        },
    )


def segment(
    mask_probability: np.ndarray, geometry: FrameGeometry, *, outline: bool = False, png: bool = False
) -> MaskPrediction:
    """Area fraction (of the imaged part of the frame), box, and optionally outline and PNG of one mask [S, S]."""
    mask = (mask_probability >= MASK_LEVEL).astype(np.uint8)
    v0, v1, u0, u1 = geometry.content
    content = mask[v0:v1, u0:u1]
    area = float(content.mean()) if content.size else 0.0
    box = _bounding_box(content, geometry, (u0, v0)) if area > 0 else None
    outlines = _outlines(mask, geometry) if outline and area > 0 else ([] if outline else None)
    return MaskPrediction(
        area_fraction=area,
        bounding_box=box,
        outlines=outlines,
        mask_png=_mask_png(content, geometry) if png else None,
    )


def _bounding_box(content: np.ndarray, geometry: FrameGeometry, offset: tuple[int, int]) -> BoundingBox:
    rows = np.flatnonzero(content.any(axis=1))
    columns = np.flatnonzero(content.any(axis=0))
    corners = np.array(
        [
            [columns[0] + offset[0], rows[0] + offset[1]],
            [columns[-1] + 1 + offset[0], rows[-1] + 1 + offset[1]],
        ]
    )
    (x0, y0), (x1, y1) = geometry.to_source(corners)
    return BoundingBox(x=round(x0, 1), y=round(y0, 1), width=round(x1 - x0, 1), height=round(y1 - y0, 1))


def _outlines(mask: np.ndarray, geometry: FrameGeometry) -> list[list[tuple[float, float]]]:
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    largest = sorted(contours, key=cv2.contourArea, reverse=True)[:MAX_OUTLINES]
    outlines = []
    for contour in largest:
        simplified = cv2.approxPolyDP(contour, OUTLINE_TOLERANCE_PX, closed=True)[:, 0, :]
        # Contour points are pixel centres; +0.5 puts them on the pixel's middle in source coordinates.
        points = geometry.to_source(simplified.astype(np.float64) + 0.5)
        outlines.append([(round(float(x), 1), round(float(y), 1)) for x, y in points])
    return outlines


def _mask_png(content: np.ndarray, geometry: FrameGeometry) -> bytes:
    y0, y1, x0, x1 = geometry.crop
    full = np.zeros((geometry.source_height, geometry.source_width), dtype=np.uint8)
    if content.size:
        full[y0:y1, x0:x1] = cv2.resize(
            content * np.uint8(255), (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST
        )
    ok, encoded = cv2.imencode(".png", full)
    if not ok:  # OpenCV fails here only when out of memory
        raise RuntimeError("could not encode the mask as PNG")
    return encoded.tobytes()
