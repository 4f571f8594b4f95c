"""Rejection curves, contingency tables, kappa and the bootstrap on exact small cases."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from usqa.trainer.amenability.evaluate import (
    DICE_TOLERANCE,
    HoldoutScores,
    bootstrap_curves,
    build_report,
    cohens_kappa,
    contingency_table,
    rejected_mask,
    rejection_curve,
)


def test_rejection_curve_drops_the_lowest_scores() -> None:
    metric = np.array([0.0, 1.0, 1.0, 0.0])
    scores = np.array([0.1, 0.9, 0.8, 0.7])
    assert rejected_mask(scores, 0.25).tolist() == [True, False, False, False]
    assert rejection_curve(metric, scores, (0.0, 0.25, 0.5)) == pytest.approx([0.5, 2 / 3, 1.0])


def test_contingency_and_kappa_match_sklearn() -> None:
    rejected = np.array([True, True, False, False, False, True])
    amenable = np.array([0, 1, 0, 1, 1, -1])  # the last frame's amenability is unknown
    table = contingency_table(rejected, amenable)
    assert table == [[1, 1], [1, 2]]
    expected = cohen_kappa_score(rejected[:5], amenable[:5] == 0)
    assert cohens_kappa(rejected, amenable) == pytest.approx(expected)
    low = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    assert cohens_kappa(low == 0, low) == pytest.approx(1.0)


def test_kappa_without_variation_or_known_labels() -> None:
    # Both raters call every frame low: expected agreement is 1, kappa undefined, reported as 0 (no warning).
    assert cohens_kappa(np.ones(4, bool), np.zeros(4, np.int64)) == 0.0
    # The raters disagree on every frame without varying: defined, and 0.
    assert cohens_kappa(np.ones(4, bool), np.ones(4, np.int64)) == pytest.approx(0.0)
    assert np.isnan(cohens_kappa(np.ones(3, bool), np.full(3, -1)))


def scores(n_subjects: int = 4, per: int = 10) -> HoldoutScores:
    rng = np.random.default_rng(0)
    n = n_subjects * per
    amenable = (rng.random(n) > 0.3).astype(np.int64)
    metric = np.where(amenable == 1, 1.0, 0.0)
    return HoldoutScores(
        metric=metric,
        controller=amenable + 0.01 * rng.random(n),  # a perfect controller
        confidence=rng.random(n),
        baseline_metric=np.full(n, 0.7),
        baseline_confidence=rng.random(n),
        amenable=amenable,
        subjects=np.repeat([f"s{i}" for i in range(n_subjects)], per),
    )


def test_bootstrap_curves_have_every_method_and_ratio() -> None:
    curves = bootstrap_curves(scores(), (0.0, 0.2), resamples=20, seed=0)
    assert set(curves) == {
        "controller",
        "random",
        "confidence",
        "labels",
        "baseline",
        "baseline_confidence",
        "baseline_controller",
        "baseline_labels",
    }
    # The perfect controller and the labels it copies give the same curve.
    assert curves["labels"]["point"] == pytest.approx(curves["controller"]["point"])
    assert curves["baseline"]["point"] == pytest.approx([0.7, 0.7])
    assert curves["controller"]["point"][1] > curves["controller"]["point"][0]
    assert all(len(c["mean"]) == 2 and len(c["std"]) == 2 for c in curves.values())


def test_report_has_the_documented_keys() -> None:
    report = build_report("classify", scores(), resamples=10, seed=0, extra={})
    for key in (
        "task",
        "metric",
        "rejection_ratios",
        "curves",
        "kappa",
        "contingency",
        "ttest",
        "operating_point",
    ):
        assert key in report
    assert report["kappa"]["controller"] > 0
    assert report["kappa_at_prevalence"]["controller"] == pytest.approx(1.0)
    assert report["ttest"]["subjects"] == 4


def test_ties_are_not_rejected_by_position() -> None:
    scores = np.zeros(1000)
    rejected = rejected_mask(scores, 0.1)
    assert rejected.sum() == 100
    assert rejected[:500].sum() not in (0, 100)  # spread over the set, not the first 100 frames
    assert np.array_equal(rejected, rejected_mask(scores, 0.1))  # and reproducible


def test_report_judges_rejectors_as_the_field_does() -> None:
    report = build_report("classify", scores(), resamples=10, seed=0, extra={})
    json.dumps(report["selective"], allow_nan=False)  # undefined numbers are null, not NaN
    selective = report["selective"]
    assert set(selective) == {"controller", "confidence", "labels", "random"}
    for numbers in selective.values():
        assert set(numbers) == {"aurc", "eaurc", "augrc", "failure_auroc", "risk_at_coverage"}
        assert set(numbers["risk_at_coverage"]) == {"0.80", "0.90", "0.95"}
    # The perfect controller ranks every failure below every success: no excess over the oracle.
    assert selective["controller"]["eaurc"] == pytest.approx(0.0, abs=1e-12)
    assert selective["controller"]["failure_auroc"] == pytest.approx(1.0)
    assert selective["labels"]["aurc"] == pytest.approx(selective["controller"]["aurc"])
    # Random rejection: AUROC one half, the mean risk at every coverage.
    error = 1.0 - scores().metric.mean()
    assert selective["random"]["failure_auroc"] == pytest.approx(0.5)
    assert selective["random"]["aurc"] == pytest.approx(error)
    assert selective["random"]["augrc"] == pytest.approx(error / 2)
    assert (
        selective["controller"]["aurc"] < selective["confidence"]["aurc"] < selective["random"]["aurc"] + 0.2
    )
    intervals = report["selective_intervals"]["controller"]
    assert len(intervals) == 7
    low, high = intervals["aurc"]
    assert low <= selective["controller"]["aurc"] <= high
    assert report["selective_definition"] == {
        "risk": "1 - accuracy",
        "failure": "wrong class",
        "dice_tolerance": None,
    }


def test_segmentation_failures_are_dice_below_the_tolerance() -> None:
    s = scores()
    dice = np.where(s.amenable == 1, 0.9, 0.5)  # failures exactly where the controller scores low
    report = build_report("segment", replace(s, metric=dice), resamples=0, seed=0, extra={})
    assert report["selective_definition"]["dice_tolerance"] == DICE_TOLERANCE
    assert report["selective"]["controller"]["failure_auroc"] == pytest.approx(1.0)
    # risk is 1 - Dice, not the failure event: the oracle still has risk 0.1 on kept frames
    assert report["selective"]["controller"]["risk_at_coverage"]["0.80"] > 0.09
    assert report["selective_intervals"] == {}


def test_no_failures_gives_a_null_auroc() -> None:
    s = replace(scores(), metric=np.ones(40), baseline_metric=None, baseline_confidence=None)
    report = build_report("classify", s, resamples=5, seed=0, extra={})
    assert report["selective"]["controller"]["failure_auroc"] is None
    assert report["selective_intervals"]["controller"]["failure_auroc"] == [None, None]
    assert report["selective"]["controller"]["aurc"] == 0.0
