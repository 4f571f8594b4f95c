from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest

from usqa.service.simulator import DEGRADATION_KINDS, NO_DEGRADATION, SimulatedFrame, simulate_cine
from usqa.service.simulator.anatomy import draw_subject
from usqa.service.simulator.cine import plan_episodes, render_frame, subject_sweep
from usqa.service.simulator.degradations import SEVERITY_RANGE
from usqa.service.simulator.presets import PRESETS
from usqa.service.simulator.scan import scan_converter


def test_frames_are_square_uint8_with_a_boolean_mask(sample_frames: list[SimulatedFrame]) -> None:
    for frame in sample_frames:
        assert frame.image.dtype == np.uint8 and frame.image.shape == (128, 128)
        assert frame.mask.dtype == bool and frame.mask.shape == (128, 128)


def test_the_mask_is_empty_exactly_when_the_organ_is_absent(sample_frames: list[SimulatedFrame]) -> None:
    for frame in sample_frames:
        assert frame.mask.any() == (frame.label == 1)
    share = np.mean([frame.label for frame in sample_frames])
    assert 0.45 < share < 0.75


def test_no_degradation_exactly_when_severity_is_zero(sample_frames: list[SimulatedFrame]) -> None:
    for frame in sample_frames:
        assert (frame.degradation == NO_DEGRADATION) == (frame.severity == 0.0)
        if frame.degradation != NO_DEGRADATION:
            assert frame.degradation in DEGRADATION_KINDS
            assert SEVERITY_RANGE[0] <= frame.severity <= SEVERITY_RANGE[1]
            assert frame.severity == round(frame.severity, 3)


def test_ground_truth_is_consistent_with_the_physics(sample_frames: list[SimulatedFrame]) -> None:
    kinds = Counter(frame.degradation for frame in sample_frames)
    assert set(kinds) == {NO_DEGRADATION, *DEGRADATION_KINDS}
    for frame in sample_frames:
        if frame.degradation == NO_DEGRADATION:
            assert frame.amenable == frame.amenable_seg == 1, "a clean frame is amenable for both tasks"
        if not frame.label:
            assert frame.amenable == frame.amenable_seg, "without an organ both tasks ask the same"
        if frame.degradation == "partial_view":
            assert frame.amenable_seg == 0, "a cut organ cannot be segmented whole"
        if frame.amenable == 0 and frame.label:
            assert frame.visibility[frame.mask].mean() < 0.9 or frame.degradation == "low_gain"
    non_amenable = [f for f in sample_frames if f.degradation != NO_DEGRADATION and not f.amenable_seg]
    assert len(non_amenable) > 20
    # The two tasks differ (shadows over an edge, partial views, blur): some frames are only classifiable.
    assert any(f.amenable and not f.amenable_seg for f in sample_frames if f.label)


def test_the_same_seed_gives_the_same_cine_and_another_seed_another() -> None:
    first = list(simulate_cine("curvilinear_abdomen", 12, seed=4, size=64, degraded_fraction=0.6))
    again = list(simulate_cine("curvilinear_abdomen", 12, seed=4, size=64, degraded_fraction=0.6))
    other = list(simulate_cine("curvilinear_abdomen", 12, seed=5, size=64, degraded_fraction=0.6))
    for a, b in zip(first, again, strict=True):
        assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask)
        assert (a.label, a.amenable, a.amenable_seg, a.degradation) == (
            b.label,
            b.amenable,
            b.amenable_seg,
            b.degradation,
        )
    assert not all(np.array_equal(a.image, c.image) for a, c in zip(first, other, strict=True))


def test_any_frame_renders_alone_as_it_does_in_the_cine() -> None:
    cine = list(simulate_cine("linear_thyroid", 15, seed=8, size=64, degraded_fraction=0.5))
    sweep = subject_sweep(8, "linear_thyroid", 0, 15, 64, 0.5)
    for index in (14, 3, 9):
        alone = render_frame(sweep, index)
        assert np.array_equal(alone.image, cine[index].image) and alone.degradation == cine[index].degradation


def test_a_sweep_plays_as_a_cine_the_organ_grows_and_shrinks_smoothly() -> None:
    areas = np.array(
        [f.mask.sum() for f in simulate_cine("linear_thyroid", 60, seed=1, degraded_fraction=0.0)]
    )
    present = np.nonzero(areas)[0]
    assert np.all(np.diff(present) == 1)
    run = areas[present].astype(float)
    assert np.abs(np.diff(run)).max() < 0.25 * run.max()
    assert run[len(run) // 2] > 2 * min(run[0], run[-1])


def test_degraded_frames_come_in_episodes_at_the_requested_fraction() -> None:
    scan = scan_converter(PRESETS["linear_thyroid"].probe, 64)
    subject = draw_subject("s000", PRESETS["linear_thyroid"], scan, np.random.default_rng(0))
    degraded, runs = 0, []
    for seed in range(200):
        episodes = plan_episodes(np.random.default_rng(seed), subject, 50, 0.35)
        assert episodes[0].start == 0 and episodes[-1].stop == 50
        assert all(a.stop == b.start for a, b in itertools.pairwise(episodes))
        degraded += sum(e.stop - e.start for e in episodes if e.kind != NO_DEGRADATION)
        runs += [e.stop - e.start for e in episodes if e.kind not in (NO_DEGRADATION, "partial_view")]
    assert abs(degraded / (200 * 50) - 0.35) < 0.04
    assert np.mean(runs) > 2


def test_cine_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="one preset"):
        next(simulate_cine("all", 3, seed=0))
    with pytest.raises(ValueError, match="at least one frame"):
        next(simulate_cine("linear_thyroid", 0, seed=0))
    with pytest.raises(ValueError, match="unknown preset"):
        next(simulate_cine("cardiac", 3, seed=0))
    with pytest.raises(ValueError, match="degraded fraction"):
        next(simulate_cine("linear_thyroid", 3, seed=0, degraded_fraction=1.5))
