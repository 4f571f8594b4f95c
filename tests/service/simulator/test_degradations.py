from __future__ import annotations

import numpy as np
import pytest

from usqa.service.simulator.acoustics import (
    build_echogenicity,
    channel_visibility,
    organ_contrast_map,
)
from usqa.service.simulator.cine import (
    Episode,
    SimulatedFrame,
    SubjectSweep,
    organ_outline,
    render_frame,
    subject_sweep,
)
from usqa.service.simulator.degradations import (
    DEGRADATION_KINDS,
    DEGRADATIONS,
    acoustic_shadow,
    cast_shadow,
    motion_kernel,
)
from usqa.service.simulator.ground_truth import VISIBLE, Amenability, judge_amenability


def _sweep(preset: str = "transrectal_prostate", seed: int = 2) -> SubjectSweep:
    return subject_sweep(seed, preset, 0, 30, 128, 0.0)


def _degraded(sweep: SubjectSweep, kind: str, severity: float, frame: int | None = None) -> SimulatedFrame:
    frame = sweep.widest_frame() if frame is None else frame
    return render_frame(sweep, frame, Episode(frame, frame + 1, kind, severity, 0))


@pytest.mark.parametrize("kind", DEGRADATION_KINDS)
def test_each_degradation_changes_the_frame_and_only_takes_visibility_away(kind: str) -> None:
    sweep = _sweep("linear_thyroid" if kind == "partial_view" else "transrectal_prostate")
    clean = render_frame(sweep, sweep.widest_frame())
    degraded = _degraded(sweep, kind, 0.9)
    assert degraded.degradation == kind and degraded.severity == 0.9
    assert not np.array_equal(clean.image, degraded.image)
    fan = sweep.scan.fan
    visibility = degraded.visibility
    assert visibility.shape == fan.shape and visibility.dtype == np.float32
    assert visibility.min() >= 0 and visibility.max() <= 1 and visibility[~fan].max() == 0
    assert (visibility <= clean.visibility + 1e-6).all()


def _shadow_everything_below(sweep: SubjectSweep, width_share: float, centre_share: float) -> Amenability:
    """Hand-placed shadow: `width_share` of the organ's lines, centred at `centre_share` across it."""
    state = sweep.state_at(sweep.widest_frame())
    build_echogenicity(state)
    assert state.organ is not None
    bx, by, _ = state.organ.boundary_points()
    lines = state.scan.line_position(bx, by)
    top = float(state.scan.depth_position(bx, by).min())
    centre = lines.min() + centre_share * (lines.max() - lines.min())
    cast_shadow(state, centre, width_share * (lines.max() - lines.min()), 0.5 * top, loss_db=60)
    return judge_amenability(
        channel_visibility(state), state.scan.fan, organ_outline(state), organ_contrast_map(state)
    )


def test_a_dense_shadow_over_the_whole_organ_leaves_nothing_to_classify() -> None:
    judged = _shadow_everything_below(_sweep(), width_share=1.3, centre_share=0.5)
    assert judged.visible_organ == 0.0
    assert not judged.classification and not judged.segmentation


def test_a_narrow_shadow_over_one_edge_spoils_segmentation_only() -> None:
    judged = _shadow_everything_below(_sweep(), width_share=0.25, centre_share=0.05)
    assert judged.classification and not judged.segmentation


def test_the_shadow_is_dark_below_a_bright_reflector() -> None:
    sweep = _sweep()
    state = sweep.state_at(2)
    before = build_echogenicity(state).copy()
    cast_shadow(state, centre_line=40, width_lines=20, reflector_row=20, loss_db=40)
    assert state.transmission is not None and state.echogenicity is not None
    assert state.transmission[60, 40] < 0.02 and state.transmission[10, 40] == 1.0
    assert state.transmission[60, 100] == 1.0
    assert state.echogenicity[21, 40] > 5 * before[21, 40]


def test_a_degradation_places_itself_the_same_way_for_the_same_generator() -> None:
    sweep = _sweep()
    first, again = sweep.state_at(10), sweep.state_at(10)
    for state in (first, again):
        build_echogenicity(state)
        acoustic_shadow(np.random.default_rng(4), state, 0.7)
    assert first.transmission is not None and again.transmission is not None
    assert np.array_equal(first.transmission, again.transmission)


def test_lost_contact_blanks_one_side_of_the_field() -> None:
    frame = _degraded(_sweep(), "contact_loss", 0.4)
    fan = _sweep().scan.fan
    left, right = frame.visibility[:, :64][fan[:, :64]], frame.visibility[:, 64:][fan[:, 64:]]
    assert min(left.mean(), right.mean()) < 0.5 < 0.9 < max(left.mean(), right.mean())


def test_low_gain_hides_the_deep_field_before_the_near_field() -> None:
    frame = _degraded(_sweep("curvilinear_abdomen"), "low_gain", 0.5)
    fan = _sweep("curvilinear_abdomen").scan.fan
    rows = np.nonzero(fan.any(axis=1))[0]
    near = frame.visibility[rows[0] + 5 : rows[0] + 20][fan[rows[0] + 5 : rows[0] + 20]]
    deep = frame.visibility[rows[-1] - 15 : rows[-1]][fan[rows[-1] - 15 : rows[-1]]]
    assert near.mean() > deep.mean() + 0.3


def test_reverberation_bands_brighten_the_near_field() -> None:
    sweep = _sweep("linear_thyroid")
    clean, degraded = render_frame(sweep, 3), _degraded(sweep, "reverberation", 1.0, frame=3)
    near = slice(5, 40)
    assert degraded.image[near].mean() > clean.image[near].mean() + 5
    assert (degraded.visibility[near] < VISIBLE).mean() > (degraded.visibility[80:] < VISIBLE).mean()


def test_partial_view_pushes_the_organ_across_the_field_edge() -> None:
    sweep = _sweep("linear_thyroid")
    frame = _degraded(sweep, "partial_view", 0.6)
    assert frame.label == 1 and frame.amenable_seg == 0
    clean_area = render_frame(sweep, sweep.widest_frame()).mask.sum()
    assert frame.mask.sum() < 0.8 * clean_area


def test_motion_blur_spoils_segmentation_of_a_small_section_before_classification() -> None:
    frame = _degraded(_sweep(), "motion_blur", 1.0)
    assert frame.label == 1 and frame.amenable == 1 and frame.amenable_seg == 0


def test_motion_kernel_is_a_normalised_line_of_the_requested_length() -> None:
    kernel = motion_kernel(9.0, 0.0)
    assert kernel.sum() == pytest.approx(1.0)
    assert np.count_nonzero(kernel.sum(axis=0)) == 9 and np.count_nonzero(kernel.sum(axis=1)) == 1


def test_degradations_are_registered_by_stage() -> None:
    assert set(DEGRADATIONS) == set(DEGRADATION_KINDS) and len(DEGRADATION_KINDS) == 8
    assert [k for k in DEGRADATION_KINDS if DEGRADATIONS[k].needs_organ] == ["partial_view"]
