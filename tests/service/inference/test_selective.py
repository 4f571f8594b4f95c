"""Selective-prediction metrics against worked examples computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from usqa.service.inference.selective import (
    augrc,
    aurc,
    bootstrap_intervals,
    classification_risk,
    failure_auroc,
    oracle_aurc,
    risk_coverage_curve,
    segmentation_risk,
    selective_metrics,
)

# Five frames, no ties. Accepted from the top: cumulative risk 0, 1, 1, 1, 2.
SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
RISKS = np.array([0.0, 1.0, 0.0, 0.0, 1.0])


def test_worked_example_without_ties() -> None:
    curve = risk_coverage_curve(SCORES, RISKS)
    np.testing.assert_allclose(curve.coverages, [0.2, 0.4, 0.6, 0.8, 1.0])
    np.testing.assert_allclose(curve.selective_risks, [0, 1 / 2, 1 / 3, 1 / 4, 2 / 5])
    np.testing.assert_allclose(curve.generalized_risks, [0, 0.2, 0.2, 0.2, 0.4])
    metrics = selective_metrics(SCORES, RISKS, RISKS > 0)
    # AURC = (0 + 1/2 + 1/3 + 1/4 + 2/5) / 5 = (89/60) / 5 = 89/300
    assert metrics.aurc == pytest.approx(89 / 300)
    # oracle order 0, 0, 0, 1, 1: selective risks 0, 0, 0, 1/4, 2/5 -> (13/20) / 5 = 39/300
    assert oracle_aurc(RISKS) == pytest.approx(39 / 300)
    assert metrics.eaurc == pytest.approx(50 / 300)
    # AUGRC, trapezoids of width 0.2 from (0, 0): 0.2 * (0 + 0.1 + 0.2 + 0.2 + 0.3) = 0.16
    assert metrics.augrc == pytest.approx(0.16)
    # failures score 0.8 and 0.5; successes 0.9, 0.7, 0.6: 4 of the 6 pairs ranked right
    assert metrics.failure_auroc == pytest.approx(4 / 6)
    # 0.80 is reached at the fourth frame; 0.90 and 0.95 only at the fifth
    assert metrics.risk_at_coverage == pytest.approx({"0.80": 1 / 4, "0.90": 2 / 5, "0.95": 2 / 5})


def test_worked_example_with_ties() -> None:
    scores = np.array([0.9, 0.5, 0.5, 0.1])
    risks = np.array([0.0, 1.0, 0.0, 0.0])
    curve = risk_coverage_curve(scores, risks)
    # the two frames at 0.5 enter together: three points, not four
    np.testing.assert_allclose(curve.thresholds, [0.9, 0.5, 0.1])
    np.testing.assert_allclose(curve.coverages, [0.25, 0.75, 1.0])
    np.testing.assert_allclose(curve.selective_risks, [0, 1 / 3, 1 / 4])
    # inside the tie the accepted risk grows by 1/2 a frame: 0, 0.5/2, 1/3, 1/4 -> (5/6) / 4 = 5/24
    assert aurc(scores, risks) == pytest.approx(5 / 24)
    # oracle 0, 0, 0, 1: (1/4) / 4 = 1/16, so E-AURC = 5/24 - 1/16 = 7/48
    assert selective_metrics(scores, risks, risks > 0).eaurc == pytest.approx(7 / 48)
    # generalized risk (0,0) (0.25,0) (0.75,0.25) (1,0.25): 0 + 0.5 * 0.125 + 0.25 * 0.25 = 0.125
    assert augrc(scores, risks) == pytest.approx(0.125)
    # the failure at 0.5 against 0.9 (right), 0.5 (tie, half), 0.1 (wrong): 1.5 / 3
    assert failure_auroc(scores, risks > 0) == pytest.approx(0.5)


def test_order_inside_a_tie_does_not_matter() -> None:
    scores = np.array([0.9, 0.5, 0.5, 0.1])
    first = selective_metrics(scores, np.array([0.0, 1.0, 0.0, 0.0]), np.array([False, True, False, False]))
    swapped = selective_metrics(scores, np.array([0.0, 0.0, 1.0, 0.0]), np.array([False, False, True, False]))
    assert first == swapped


def test_oracle_score_has_no_excess() -> None:
    generator = np.random.default_rng(3)
    risks = generator.integers(0, 2, size=200).astype(float)
    metrics = selective_metrics(-risks, risks, risks > 0)  # plateaus of equal scores included
    assert metrics.eaurc == pytest.approx(0.0, abs=1e-12)
    assert metrics.failure_auroc == pytest.approx(1.0)
    error = risks.mean()
    # Traub et al.: the optimal AUGRC of binary risks is error^2 / 2
    assert metrics.augrc == pytest.approx(error**2 / 2)
    # Geifman's continuous oracle e + (1 - e) ln(1 - e) approximates the discrete one
    assert oracle_aurc(risks) == pytest.approx(error + (1 - error) * math.log(1 - error), abs=0.02)


def test_constant_score_is_random() -> None:
    risks = np.array([0.0, 1.0, 1.0, 0.0, 0.0, 1.0])
    metrics = selective_metrics(np.full(6, 0.3), risks, risks > 0)
    assert metrics.failure_auroc == 0.5
    assert metrics.aurc == pytest.approx(0.5)  # the mean risk at every coverage
    assert metrics.augrc == pytest.approx(0.25)  # straight line from 0 to 0.5
    assert metrics.risk_at_coverage == {"0.80": 0.5, "0.90": 0.5, "0.95": 0.5}


def test_reversed_ranking_is_worst() -> None:
    risks = np.array([0.0, 0.0, 1.0, 1.0])
    best = selective_metrics(-risks, risks, risks > 0)
    worst = selective_metrics(risks, risks, risks > 0)
    assert worst.failure_auroc == 0.0
    assert worst.aurc > 0.5 > best.aurc
    assert worst.augrc > best.augrc


def test_no_failures_gives_an_undefined_auroc() -> None:
    assert math.isnan(failure_auroc(np.array([0.1, 0.2]), np.array([False, False])))


def test_task_risks() -> None:
    risks, failures = classification_risk(np.array([0, 1, 2]), np.array([0, 2, 2]))
    np.testing.assert_array_equal(risks, [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(failures, [False, True, False])
    risks, failures = segmentation_risk(np.array([0.95, 0.6, 0.8]), tolerance=0.8)
    np.testing.assert_allclose(risks, [0.05, 0.4, 0.2])
    np.testing.assert_array_equal(failures, [False, True, False])


def test_mismatched_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="as many scores as risks"):
        aurc(np.array([0.1, 0.2]), np.array([0.0]))
    with pytest.raises(ValueError, match="finite"):
        aurc(np.array([np.nan]), np.array([0.0]))


def _subject_data(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    generator = np.random.default_rng(seed)
    subjects = np.repeat(np.arange(8), 10)
    risks = (generator.random(80) < 0.3).astype(float)
    scores = generator.random(80) - 0.5 * risks
    return scores, risks, risks > 0, subjects


def test_bootstrap_is_deterministic_and_brackets_the_estimate() -> None:
    scores, risks, failures, subjects = _subject_data(0)
    first = bootstrap_intervals(scores, risks, failures, subjects, n_resamples=200, seed=7)
    again = bootstrap_intervals(scores, risks, failures, subjects, n_resamples=200, seed=7)
    other = bootstrap_intervals(scores, risks, failures, subjects, n_resamples=200, seed=8)
    assert first == again
    assert first != other
    assert set(first) == {
        "aurc",
        "eaurc",
        "augrc",
        "failure_auroc",
        "risk_at_coverage_0.80",
        "risk_at_coverage_0.90",
        "risk_at_coverage_0.95",
    }
    estimate = selective_metrics(scores, risks, failures)
    for name in ("aurc", "augrc", "failure_auroc"):
        low, high = first[name]
        assert low <= getattr(estimate, name) <= high


def test_bootstrap_resamples_whole_subjects() -> None:
    # one subject: every resample is that subject, so the interval is a point
    scores, risks, failures, _ = _subject_data(1)
    intervals = bootstrap_intervals(scores, risks, failures, np.zeros(80), n_resamples=20, seed=0)
    estimate = selective_metrics(scores, risks, failures)
    assert intervals["aurc"] == pytest.approx((estimate.aurc, estimate.aurc))
