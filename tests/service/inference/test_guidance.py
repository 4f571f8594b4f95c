from __future__ import annotations

import pytest

from usqa.contracts.protocol import Verdict
from usqa.service.inference.guidance import GuidanceConfig, GuidanceTracker
from usqa.service.inference.verdict import FrameVerdict

GOOD, ADJUST, NO_SIGNAL, OUT_OF_SCOPE = Verdict.GOOD, Verdict.ADJUST, Verdict.NO_SIGNAL, Verdict.OUT_OF_SCOPE

THRESHOLD = 0.5
SIGNAL = FrameVerdict("adjust", "low_score")  # an in-scope frame: its display score decides
DARK = FrameVerdict("no_signal", "blank")
ELSEWHERE = FrameVerdict("out_of_scope", "out_of_distribution")


def run(scores: list[float], config: GuidanceConfig | None = None, frame: FrameVerdict = SIGNAL) -> list[str]:
    tracker = GuidanceTracker(config or GuidanceConfig(smoothing=1.0, margin=0.05, dwell_frames=3))
    return [tracker.update(frame, s, THRESHOLD).state for s in scores]


def test_the_first_frame_decides_at_once() -> None:
    assert run([0.9]) == [GOOD]
    assert run([0.1]) == [ADJUST]


def test_scores_inside_the_dead_band_never_flicker() -> None:
    # Smoothing off (weight 1): raw scores 0.47-0.53 sit inside threshold +- margin.
    assert run([0.1] + [0.53, 0.47] * 10) == [ADJUST] * 21
    assert run([0.9] + [0.47, 0.53] * 10) == [GOOD] * 21


def test_a_change_needs_the_dwell() -> None:
    states = run([0.1, 0.9, 0.9, 0.9, 0.9])
    assert states == [ADJUST, ADJUST, ADJUST, GOOD, GOOD]
    # A two-frame dip below the band is not enough to leave `good`.
    assert run([0.9, 0.2, 0.2, 0.9, 0.2, 0.2, 0.2]) == [GOOD, GOOD, GOOD, GOOD, GOOD, GOOD, ADJUST]


def test_smoothing_is_an_exponential_moving_average() -> None:
    tracker = GuidanceTracker(GuidanceConfig(smoothing=0.25))
    tracker.update(SIGNAL, 0.8, THRESHOLD)
    update = tracker.update(SIGNAL, 0.4, THRESHOLD)
    assert update.smoothed_score == pytest.approx(0.25 * 0.4 + 0.75 * 0.8)


def test_dark_frames_become_no_signal_and_restart_the_smoothing() -> None:
    tracker = GuidanceTracker(GuidanceConfig(smoothing=0.5, margin=0.05, dwell_frames=2))
    assert tracker.update(SIGNAL, 0.9, THRESHOLD).state == GOOD
    first_dark = tracker.update(DARK, 0.1, THRESHOLD)
    assert first_dark.state == GOOD and not first_dark.has_signal
    assert first_dark.smoothed_score == 0.9  # a dark frame's score is not averaged in
    second_dark = tracker.update(DARK, 0.1, THRESHOLD)
    assert second_dark.state == NO_SIGNAL and second_dark.changed and second_dark.smoothed_score is None
    back = tracker.update(SIGNAL, 0.2, THRESHOLD)
    assert back.smoothed_score == 0.2 and back.state == NO_SIGNAL
    assert tracker.update(SIGNAL, 0.2, THRESHOLD).state == ADJUST


def test_a_no_signal_frame_is_no_signal_from_the_first_frame() -> None:
    assert run([0.9, 0.9], GuidanceConfig(dwell_frames=1), frame=DARK) == [NO_SIGNAL, NO_SIGNAL]


def test_out_of_scope_frames_are_never_good_and_restart_the_smoothing() -> None:
    tracker = GuidanceTracker(GuidanceConfig(smoothing=0.5, margin=0.05, dwell_frames=2))
    assert tracker.update(SIGNAL, 0.9, THRESHOLD).state == GOOD
    tracker.update(ELSEWHERE, 1.0, THRESHOLD)
    update = tracker.update(ELSEWHERE, 1.0, THRESHOLD)
    assert (update.state, update.reason, update.smoothed_score) == (OUT_OF_SCOPE, "out_of_distribution", None)
    back = tracker.update(SIGNAL, 0.9, THRESHOLD)
    assert back.state == OUT_OF_SCOPE and back.reason == "out_of_distribution"
    assert tracker.update(SIGNAL, 0.9, THRESHOLD).reason == "amenable"
