"""The certified pass line: exact p-values, refusals that say why, and the promise kept on repeated draws."""

from __future__ import annotations

import math

import numpy as np
import pytest

from usqa.trainer.amenability.certification import (
    binomial_p_value,
    calibration_subjects,
    candidate_lines,
    certify,
    correctness_calibration,
    expected_calibration_error,
)


def test_binomial_p_value_is_the_exact_lower_tail() -> None:
    n, k, alpha = 20, 1, 0.1
    exact = sum(math.comb(n, i) * alpha**i * (1 - alpha) ** (n - i) for i in range(k + 1))
    assert binomial_p_value(k, n, alpha) == pytest.approx(exact)


def draw(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Scores uniform on [0, 1]; P(fail | u) = 0.3 (1 - u): the risk above a line t is 0.15 (1 - t)."""
    scores = rng.random(n)
    return scores, rng.random(n) < 0.3 * (1 - scores)


def test_a_certified_line_keeps_its_promise_on_repeated_draws() -> None:
    """alpha 0.1: the true risk above t is <= 0.1 exactly when t >= 1/3; delta 0.1 bounds how often the
    certified line falls below 1/3 over calibration draws."""
    rng = np.random.default_rng(7)
    lines = candidate_lines(rng.random(100_000))
    violations, certified = 0, 0
    trials = 300
    for _ in range(trials):
        scores, failures = draw(400, rng)
        result = certify(
            lines, scores, failures, scores[:0], failures[:0], calibration_subject_count=40, alpha=0.1
        )
        if result.certified:
            certified += 1
            assert result.threshold is not None and result.calibration_risk is not None
            violations += result.threshold < 1 / 3
    assert certified > 0.6 * trials  # power: the strictest line (30 % coverage) holds ~5 failures in 120
    assert violations / trials <= 0.1 + 3 * math.sqrt(0.1 * 0.9 / trials)


def test_the_line_is_checked_on_the_other_frames() -> None:
    rng = np.random.default_rng(1)
    lines = candidate_lines(rng.random(10_000))
    scores, failures = draw(2000, rng)
    check_scores, check_failures = draw(2000, rng)
    result = certify(
        lines, scores, failures, check_scores, check_failures, calibration_subject_count=50, alpha=0.1
    )
    assert result.certified and result.threshold is not None
    assert result.calibration_frames == 2000 and result.holdout_frames == 2000
    assert result.calibration_risk is not None and result.calibration_risk <= 0.1
    assert result.holdout_risk == pytest.approx(check_failures[check_scores >= result.threshold].mean())
    assert result.holdout_coverage == pytest.approx((check_scores >= result.threshold).mean())
    assert "certified" in result.reason and "10%" in result.reason


def test_nothing_certifiable_says_why() -> None:
    rng = np.random.default_rng(2)
    lines = candidate_lines(rng.random(1000))
    few = certify(
        lines,
        rng.random(10),
        np.zeros(10, bool),
        np.array([]),
        np.array([]),
        calibration_subject_count=2,
        alpha=0.05,
    )
    assert not few.certified and few.threshold is None and few.reason.startswith("too few calibration frames")
    scores = rng.random(500)
    bad = certify(lines, scores, scores < 0.9, scores, scores < 0.9, calibration_subject_count=20, alpha=0.05)
    assert not bad.certified and bad.reason.startswith("risk too high")
    assert bad.holdout_risk is None and bad.calibration_coverage is None
    with pytest.raises(ValueError, match="alpha and delta"):
        certify(lines, scores, scores < 0.5, scores, scores < 0.5, calibration_subject_count=1, alpha=0.0)


def test_calibration_half_is_drawn_by_subject_and_seeded() -> None:
    subjects = np.repeat(np.arange(10), 5)
    half = calibration_subjects(subjects, seed=3)
    assert np.unique(subjects[half]).size == 5
    for s in range(10):  # a subject is wholly in one half
        assert half[subjects == s].all() or not half[subjects == s].any()
    assert np.array_equal(half, calibration_subjects(subjects, seed=3))


def test_correctness_map_increases_and_is_calibrated_on_its_frames() -> None:
    rng = np.random.default_rng(4)
    scores, failures = draw(5000, rng)
    xs, ys = correctness_calibration(scores, failures)
    assert np.all(np.diff(xs) > 0) and np.all(np.diff(ys) > 0)
    shown = np.interp(scores, xs, ys)
    ece, diagram = expected_calibration_error(shown, ~failures)
    assert ece < 0.02 and sum(b["frames"] for b in diagram) == 5000
    # P(right | u) = 0.7 + 0.3 u: the map follows it
    assert np.interp(0.5, xs, ys) == pytest.approx(0.85, abs=0.05)
