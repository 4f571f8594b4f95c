"""Planted validation metrics for the honest gate: a predictor at the majority class and one whose margin over
it (+0.011 over 180 frames, as in issue 24) is within its sampling error."""

from __future__ import annotations

import numpy as np

from usqa.trainer.amenability.acceptance import Verdict, judge

FRAMES = 180
# The majority class is right on 113 of 180 validation frames (0.628).
TRIVIAL_RIGHT = 113


def classifier_frames(gained: int, lost: int, frames: int = FRAMES) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame accuracy of a predictor and of the majority class: the predictor is right where the majority
    class is, except on `lost` of those frames, and also right on `gained` frames where the majority is wrong."""
    trivial = np.zeros(frames)
    trivial[:TRIVIAL_RIGHT] = 1.0
    predictor = trivial.copy()
    predictor[:lost] = 0.0
    predictor[TRIVIAL_RIGHT : TRIVIAL_RIGHT + gained] = 1.0
    return predictor, trivial


def marginal_verdict() -> Verdict:
    """+0.011 over 180 frames (6 frames gained, 4 lost): a margin of 2/180 with a standard error of 0.018; the
    controller ranks and no frame is labelled, so the predictor's margin is the only rule that can fail."""
    predictor, trivial = classifier_frames(gained=6, lost=4)
    scores = np.linspace(0.0, 1.0, FRAMES)
    return judge("classify", predictor, trivial, "always class 1", scores, np.full(FRAMES, -1))
