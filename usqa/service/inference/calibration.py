"""The display scale of a served version: the served rejector's raw score -> the score users see, and the
OOD threshold.

A schema_version 3 manifest's display scale is `p_correct`: the calibrated probability that the task model
is right on the frame (breakpoints fitted on the certification's calibration frames), and the pass line is
the certified threshold on that scale. A schema_version 2 manifest carries its calibration
(usqa/service/registry/manifest.py `Calibration`, `OodCalibration`); the display score is the raw score's
percentile among the validation frames, so the threshold at target rejection r sits at r on the display
scale and "0.80" means "better than 80 % of validation frames". A v1
manifest has none: the display scale is the raw score, there is no out-of-scope check, and `fallback` says so
(readiness detail, the `usqa_model_calibrated` gauge, the load log).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from usqa.service.registry import Manifest

DisplayScale = Literal["percentile", "p_correct", "raw"]
MSG_UNCALIBRATED = (
    "manifest of {name!r} version {version} has no calibration (schema_version 1): raw scores on the gauge, "
    "no out-of-scope check; re-export the version to add them"
)


@dataclass(frozen=True)
class ScoreScale:
    """How one version's scores are shown and judged."""

    scale: DisplayScale
    display_threshold: float
    quantiles: np.ndarray | None  # validation scores at evenly spaced probabilities
    isotonic_x: np.ndarray | None
    isotonic_y: np.ndarray | None
    ood_output: str | None
    ood_threshold: float | None
    correct_x: np.ndarray | None = None  # p_correct: P(right | score) breakpoints
    correct_y: np.ndarray | None = None

    @property
    def fallback(self) -> bool:
        return self.quantiles is None

    def display(self, score: float) -> float:
        """The score users see, in [0, 1]."""
        if self.correct_x is not None and self.correct_y is not None:
            return float(np.interp(score, self.correct_x, self.correct_y))
        if self.quantiles is None:
            return score
        return percentile_of(score, self.quantiles)

    def p_amenable(self, score: float) -> float | None:
        """P(amenable | score) from the isotonic fit on labelled validation frames; None without labels."""
        if self.isotonic_x is None or self.isotonic_y is None:
            return None
        return float(np.interp(score, self.isotonic_x, self.isotonic_y))


def percentile_of(score: float, quantiles: np.ndarray) -> float:
    """The share of validation frames scoring below `score`, interpolated; ties count half (a mid-rank)."""
    probabilities = np.linspace(0.0, 1.0, len(quantiles))
    # np.interp picks the last of equal breakpoints; the mirrored look-up picks the first: their mean is a
    # mid-rank, so a weak model whose scores tie does not jump from 0 to 1 across one value.
    upper = np.interp(score, quantiles, probabilities)
    lower = 1.0 - np.interp(-score, -quantiles[::-1], probabilities)
    return float(np.clip((upper + lower) / 2, 0.0, 1.0))


def score_scale(manifest: Manifest, threshold: float) -> ScoreScale:
    """The display scale of `manifest` with its raw threshold `threshold` mapped onto it."""
    calibration, ood = manifest.calibration, manifest.ood
    ood_output = None if ood is None else ood.output
    ood_threshold = None if ood is None else ood.threshold
    if calibration is None:
        return ScoreScale("raw", threshold, None, None, None, ood_output, ood_threshold)
    quantiles = np.asarray(calibration.score_quantiles, dtype=np.float64)
    iso_x = None if calibration.isotonic_x is None else np.asarray(calibration.isotonic_x, np.float64)
    iso_y = None if calibration.isotonic_y is None else np.asarray(calibration.isotonic_y, np.float64)
    correct = calibration.display_scale == "p_correct" and calibration.correct_x and calibration.correct_y
    scale = ScoreScale(
        scale=calibration.display_scale,
        display_threshold=0.0,
        quantiles=quantiles,
        isotonic_x=iso_x,
        isotonic_y=iso_y,
        ood_output=ood_output,
        ood_threshold=ood_threshold,
        correct_x=np.asarray(calibration.correct_x, np.float64) if correct else None,
        correct_y=np.asarray(calibration.correct_y, np.float64) if correct else None,
    )
    return replace(scale, display_threshold=scale.display(threshold))
