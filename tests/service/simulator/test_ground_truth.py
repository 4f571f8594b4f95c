"""The amenability rules on hand-built maps: a disc-shaped organ in a 64 x 64 field of view."""

from __future__ import annotations

import numpy as np

from usqa.service.simulator.ground_truth import (
    MIN_ORGAN_CONTRAST_DB,
    SEGMENT_MAX_BLUR_TO_RADIUS,
    OrganOutline,
    judge_amenability,
)

SIZE = 64
FAN = np.ones((SIZE, SIZE), bool)


def disc(col: float = 32, row: float = 32, radius: float = 12) -> OrganOutline:
    rings, n = 12, 64
    rho = np.sqrt((np.arange(rings) + 0.5) / rings)
    angle = np.linspace(0, 2 * np.pi, n, endpoint=False)
    rho_grid, angle_grid = np.meshgrid(rho, angle, indexing="ij")
    return OrganOutline(
        area_cols=col + radius * (rho_grid * np.cos(angle_grid)).ravel(),
        area_rows=row + radius * (rho_grid * np.sin(angle_grid)).ravel(),
        area_weights=np.full(rings * n, 1 / (rings * n)),
        area_rho=rho_grid.ravel(),
        boundary_cols=col + radius * np.cos(angle),
        boundary_rows=row + radius * np.sin(angle),
        boundary_weights=np.full(n, 1 / n),
        equivalent_radius_px=radius,
    )


def contrast(db: float = 8.0) -> np.ndarray:
    return np.full((SIZE, SIZE), db, np.float32)


def visible() -> np.ndarray:
    return np.ones((SIZE, SIZE), np.float32)


def test_a_clear_view_is_amenable_for_both_tasks() -> None:
    judged = judge_amenability(visible(), FAN, disc(), contrast())
    assert judged.classification and judged.segmentation
    assert judged.visible_organ == 1.0 and judged.visible_boundary == 1.0


def test_a_shadow_over_the_whole_organ_is_amenable_for_neither() -> None:
    visibility = visible()
    visibility[:, 16:48] = 0.05
    judged = judge_amenability(visibility, FAN, disc(), contrast())
    assert not judged.classification and not judged.segmentation


def test_a_shadow_over_part_of_the_boundary_still_allows_classification() -> None:
    visibility = visible()
    visibility[:, 18:26] = 0.0
    judged = judge_amenability(visibility, FAN, disc(), contrast())
    assert judged.classification and not judged.segmentation
    assert 0.5 < judged.visible_organ < 1 and judged.visible_boundary < 0.9


def test_an_overlay_in_a_far_corner_leaves_both_tasks_amenable() -> None:
    visibility = visible()
    visibility[:10, :20] = 0.0
    judged = judge_amenability(visibility, FAN, disc(), contrast())
    assert judged.classification and judged.segmentation


def test_an_organ_cut_by_the_screen_edge_is_not_segmentable() -> None:
    judged = judge_amenability(visible(), FAN, disc(col=4), contrast())
    assert judged.classification and not judged.segmentation


def test_lost_contrast_makes_the_organ_unrecognisable() -> None:
    judged = judge_amenability(visible(), FAN, disc(), contrast(MIN_ORGAN_CONTRAST_DB - 0.5))
    assert not judged.classification and not judged.segmentation


def test_motion_blur_longer_than_the_capsule_tolerates_spoils_only_segmentation() -> None:
    too_long = 12 * SEGMENT_MAX_BLUR_TO_RADIUS + 1
    judged = judge_amenability(visible(), FAN, disc(), contrast(), blur_length_px=too_long)
    assert judged.classification and not judged.segmentation
    assert judge_amenability(visible(), FAN, disc(), contrast(), blur_length_px=2).segmentation


def test_absence_is_only_certain_when_most_of_the_field_is_visible() -> None:
    visibility = visible()
    assert judge_amenability(visibility, FAN, None).classification
    visibility[:, :40] = 0.2
    judged = judge_amenability(visibility, FAN, None)
    assert not judged.classification and not judged.segmentation
    assert judged.visible_field < 0.6
