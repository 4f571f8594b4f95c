from __future__ import annotations

import math

import numpy as np
import pytest

from usqa.service.live.drift import (
    MIN_DRIFT_SAMPLES,
    DriftMonitor,
    ScoreHistogramCounter,
    population_stability_index,
)
from usqa.service.registry import ScoreHistogram

REFERENCE = ScoreHistogram(edges=[0.0, 0.25, 0.5, 0.75, 1.0], counts=[10, 20, 30, 40])


def test_psi_of_a_distribution_with_itself_is_zero() -> None:
    assert population_stability_index([1, 2, 3], [10, 20, 30]) == pytest.approx(0.0)


def test_psi_matches_the_formula() -> None:
    expected, actual = [50, 50], [80, 20]
    by_hand = (0.8 - 0.5) * math.log(0.8 / 0.5) + (0.2 - 0.5) * math.log(0.2 / 0.5)
    assert population_stability_index(expected, actual) == pytest.approx(by_hand)


def test_psi_needs_matching_nonempty_histograms() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        population_stability_index([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="no counts"):
        population_stability_index([0, 0], [1, 2])


def test_scores_fall_into_the_reference_bins_with_open_ends() -> None:
    counter = ScoreHistogramCounter(REFERENCE)
    for score in (0.0, 0.24, 0.25, 0.99, 1.0, 1.5, -0.1):
        counter.add(score)
    assert counter.counts == [3, 1, 0, 3]


def test_drift_is_reported_only_with_enough_scores_and_a_reference() -> None:
    counter = ScoreHistogramCounter(REFERENCE)
    for _ in range(MIN_DRIFT_SAMPLES - 1):
        counter.add(0.9)
    assert counter.psi() is None
    counter.add(0.9)
    psi = counter.psi()
    assert psi is not None and psi > 0.25  # everything in the top bin: a different population
    no_reference = ScoreHistogramCounter(None)
    for _ in range(100):
        no_reference.add(0.5)
    assert no_reference.psi() is None


def test_the_service_monitor_forgets_scores_outside_its_window() -> None:
    monitor = DriftMonitor(REFERENCE, window=50)
    rng = np.random.default_rng(0)
    for _ in range(200):
        monitor.add(0.95)
    # Now the live mix follows the reference: the old scores leave the window and the index falls.
    shares = np.repeat([0.1, 0.4, 0.6, 0.9], [5, 10, 15, 20])
    for score in rng.permutation(shares):
        monitor.add(float(score))
    assert monitor.total == 50
    assert monitor.counts == [5, 10, 15, 20]
    assert monitor.psi() == pytest.approx(0.0, abs=1e-9)
