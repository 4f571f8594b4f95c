"""Score drift: the live amenability-score distribution against the validation histogram in the manifest.

A schema_version 2 manifest's `drift_reference` holds quantile bins of the validation scores (and of the OOD
distances): each bin holds an equal share of validation frames, so a stream whose scores crowd into a few bins
(another anatomy, a new scanner) moves the index however narrow the model's score range. A v1 manifest has
only the fixed-width `score_histogram`, which a weak model's scores may fit into one bin of.

The measure is the population stability index over the manifest's bins,
PSI = sum_i (p_i - q_i) ln(p_i / q_i), p live and q validation shares, each floored at `EPSILON` so an
empty bin does not make it infinite.

The usual rules of thumb (< 0.1 stable, > 0.25 a different population) are for samples drawn independently
from a population. A stream is one patient's sweep, hundreds of frames of one anatomy, and the validation
frames are many patients. Measured with the shipped model (`python -m experiments.drift`), single simulated
sweeps of the model's own distribution reach a score PSI of 0.12-1.09, and 12 of them pooled 0.19. The
built-in demo cine reaches 0.31, a cardiac echo 5.0. So:
- the index is reported per stream for a look, with no alarm;
- the service-wide index (`DriftMonitor`, the last `USQA_DRIFT_WINDOW` scores) is published only from
  `SERVICE_MIN_FRAMES` scores on;
- docker/prometheus/rules.yml alarms above `ALARM_PSI` (2.0), and beside it on the out-of-scope rate.
"""

from __future__ import annotations

import bisect
import collections
import math
from collections.abc import Sequence

import numpy as np

from usqa.service.registry import Manifest, ScoreHistogram

EPSILON = 1e-4
# Below this many scores the index says more about sampling noise than about drift: reported as None.
MIN_DRIFT_SAMPLES = 30
# The service-wide index (the alarm's input) needs more: a few streams' worth, not one stream's first frames.
SERVICE_MIN_FRAMES = 500
# The alarm level of the service-wide score index (docker/prometheus/rules.yml says the same number; a test
# checks it): above every simulated sweep of the model's own distribution, far below a cardiac echo.
ALARM_PSI = 2.0
# Used when a manifest carries no validation histogram: equal-width bins, drift not computable.
DEFAULT_EDGES = tuple(float(x) for x in np.linspace(0.0, 1.0, 11))


def score_reference(manifest: Manifest) -> ScoreHistogram | None:
    """The bins drift of controller scores is measured on: validation quantiles when the manifest has them."""
    if manifest.drift_reference is not None:
        return manifest.drift_reference.score
    return manifest.score_histogram


def ood_reference(manifest: Manifest) -> ScoreHistogram | None:
    """Validation quantile bins of the OOD distance; None for manifests without an out-of-scope check."""
    return None if manifest.drift_reference is None else manifest.drift_reference.ood


def population_stability_index(expected: Sequence[float], actual: Sequence[float]) -> float:
    """PSI between two histograms over the same bins (counts or shares)."""
    if len(expected) != len(actual):
        raise ValueError(f"histograms differ in length: {len(expected)} and {len(actual)}")
    expected_total = float(sum(expected))
    actual_total = float(sum(actual))
    if expected_total <= 0 or actual_total <= 0:
        raise ValueError("a histogram with no counts has no distribution")
    psi = 0.0
    for e, a in zip(expected, actual, strict=True):
        q = max(e / expected_total, EPSILON)
        p = max(a / actual_total, EPSILON)
        psi += (p - q) * math.log(p / q)
    return psi


class ScoreHistogramCounter:
    """Scores counted into fixed bins (the reference's when there is one); the first and last bins are open."""

    def __init__(self, reference: ScoreHistogram | None, min_samples: int = MIN_DRIFT_SAMPLES) -> None:
        self.reference = reference if reference is not None and sum(reference.counts) > 0 else None
        self.min_samples = min_samples
        # Plain lists: one score at a time, bisect on a list beats numpy's per-call overhead.
        self.edges = [float(e) for e in (reference.edges if reference is not None else DEFAULT_EDGES)]
        self.counts = [0] * (len(self.edges) - 1)
        self.total = 0

    def bin_of(self, score: float) -> int:
        index = bisect.bisect_right(self.edges, score) - 1
        return min(max(index, 0), len(self.counts) - 1)

    def add(self, score: float) -> int:
        index = self.bin_of(score)
        self.counts[index] += 1
        self.total += 1
        return index

    def psi(self) -> float | None:
        if self.reference is None or self.total < self.min_samples:
            return None
        return population_stability_index(self.reference.counts, self.counts)


class DriftMonitor(ScoreHistogramCounter):
    """The service-wide estimate over the last `window` scores, whatever their source; None below
    `min_samples` of them."""

    def __init__(
        self, reference: ScoreHistogram | None, window: int, min_samples: int = MIN_DRIFT_SAMPLES
    ) -> None:
        super().__init__(reference, min(min_samples, window))
        self._recent: collections.deque[int] = collections.deque(maxlen=window)

    def add(self, score: float) -> int:
        if len(self._recent) == self._recent.maxlen:
            self.counts[self._recent[0]] -= 1
            self.total -= 1
        index = super().add(score)
        self._recent.append(index)
        return index
