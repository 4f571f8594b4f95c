"""Ground-truth amenability from physics: which tissue survives to the screen, and is it enough for the task.

Every frame has a visibility map in [0, 1] per screen pixel (0 outside the field of view). The rules below
turn it, the organ's outline and its surviving contrast into two labels: amenable for classification
(organ present or absent) and amenable for segmentation (its whole boundary). The thresholds are here and
nowhere else; docs/simulator.md gives the reason for each.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# A pixel carries tissue information when its visibility is at least this.
VISIBLE = 0.5
# Visibility is the tissue echo's height above what the screen would show without tissue (noise, clutter,
# black), in displayed dB, divided by this: 12 dB is about twice the speckle's own spread (5.6 dB).
FULL_VISIBILITY_DB = 12.0
# Classification, organ present: at least this share of the organ's area visible ...
CLASSIFY_MIN_VISIBLE_ORGAN = 0.5
# ... and the organ still darker than its surroundings on screen by this much (averaged over its inside).
MIN_ORGAN_CONTRAST_DB = 3.0
# Organ absent: at least this share of the field of view visible, to be sure nothing is hiding.
ABSENT_MIN_VISIBLE_FIELD = 0.6
# Segmentation: at least this share of the organ's boundary (by length) visible and inside the field ...
SEGMENT_MIN_VISIBLE_BOUNDARY = 0.9
# ... and motion smears no more than this share of the organ's equivalent radius.
SEGMENT_MAX_BLUR_TO_RADIUS = 0.4
# Area samples this deep inside (normalised radius) measure the organ's contrast, clear of the capsule.
CONTRAST_SAMPLE_RADIUS = 0.8


@dataclass(frozen=True)
class OrganOutline:
    """The organ sampled in screen pixels: area points (with weights and normalised radius) and boundary."""

    area_cols: np.ndarray
    area_rows: np.ndarray
    area_weights: np.ndarray
    area_rho: np.ndarray
    boundary_cols: np.ndarray
    boundary_rows: np.ndarray
    boundary_weights: np.ndarray
    equivalent_radius_px: float


@dataclass(frozen=True)
class Amenability:
    """The two labels and the measurements behind them."""

    classification: bool
    segmentation: bool
    visible_field: float
    visible_organ: float
    visible_boundary: float
    organ_contrast_db: float


def sample_nearest(image: np.ndarray, cols: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Values of `image` at the nearest pixel of each point; 0 for points off the screen."""
    c = np.rint(cols).astype(np.int64)
    r = np.rint(rows).astype(np.int64)
    on_screen = (c >= 0) & (c < image.shape[1]) & (r >= 0) & (r < image.shape[0])
    values = np.zeros(c.shape, np.float32)
    values[on_screen] = image[r[on_screen], c[on_screen]]
    return values


def judge_amenability(
    visibility: np.ndarray,
    fan: np.ndarray,
    organ: OrganOutline | None,
    contrast_db: np.ndarray | None = None,
    blur_length_px: float = 0.0,
) -> Amenability:
    """Amenability for classification and segmentation of one frame.

    `visibility` and `contrast_db` are screen maps (contrast: how much darker the organ would look than
    the tissue around it, in displayed dB, given the acquisition channel there); `organ` is None when the
    image plane misses the organ. Off-screen organ points count as invisible.
    """
    field_pixels = max(1, int(fan.sum()))
    visible_field = float(((visibility >= VISIBLE) & fan).sum()) / field_pixels
    if organ is None:
        sure_absent = visible_field >= ABSENT_MIN_VISIBLE_FIELD
        return Amenability(sure_absent, sure_absent, visible_field, 0.0, 0.0, 0.0)

    area_visible = sample_nearest(visibility, organ.area_cols, organ.area_rows) >= VISIBLE
    visible_organ = float(organ.area_weights[area_visible].sum())
    boundary_visible = sample_nearest(visibility, organ.boundary_cols, organ.boundary_rows) >= VISIBLE
    visible_boundary = float(organ.boundary_weights[boundary_visible].sum())

    inner = area_visible & (organ.area_rho <= CONTRAST_SAMPLE_RADIUS)
    if contrast_db is None:
        organ_contrast = float("inf")
    elif inner.any():
        contrast = sample_nearest(contrast_db, organ.area_cols[inner], organ.area_rows[inner])
        organ_contrast = float(np.average(contrast, weights=organ.area_weights[inner]))
    else:
        organ_contrast = 0.0
    contrast_survives = organ_contrast >= MIN_ORGAN_CONTRAST_DB

    classification = visible_organ >= CLASSIFY_MIN_VISIBLE_ORGAN and contrast_survives
    sharp = blur_length_px <= SEGMENT_MAX_BLUR_TO_RADIUS * organ.equivalent_radius_px
    segmentation = visible_boundary >= SEGMENT_MIN_VISIBLE_BOUNDARY and contrast_survives and sharp
    return Amenability(
        classification, segmentation, visible_field, visible_organ, visible_boundary, organ_contrast
    )
