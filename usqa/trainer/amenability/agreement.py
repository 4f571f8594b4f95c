"""Agreement between the controller's rejections and the ground-truth amenability labels (Cohen's kappa).

One definition for every place that judges a controller: the evaluation report, the end-of-run verdict,
the transfer study. Labels: 1 amenable, 0 non-amenable, -1 unknown (left out).
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import cohen_kappa_score


def contingency_table(rejected: np.ndarray, amenable: np.ndarray) -> list[list[int]]:
    """[[subj. low & pred. low, subj. low & pred. high], [subj. high & pred. low, subj. high & pred. high]]."""
    known = amenable >= 0
    low, pred_low = amenable[known] == 0, rejected[known]
    return [
        [int(np.sum(low & pred_low)), int(np.sum(low & ~pred_low))],
        [int(np.sum(~low & pred_low)), int(np.sum(~low & ~pred_low))],
    ]


def cohens_kappa(rejected: np.ndarray, amenable: np.ndarray) -> float:
    """Cohen's kappa of "rejected" vs "subjectively low", over the frames of `contingency_table`.

    NaN when no frame has a known label; 0 when both raters give every frame one and the same answer (the
    expected agreement is 1 and kappa is undefined).
    """
    known = amenable >= 0
    if not known.any():
        return float("nan")
    predicted_low, low = rejected[known], amenable[known] == 0
    if np.unique(np.concatenate([predicted_low, low])).size == 1:
        return 0.0
    return float(cohen_kappa_score(predicted_low, low, labels=[False, True]))


def non_amenable_fraction(amenable: np.ndarray) -> float:
    """The share of labelled frames that are non-amenable (0 when none is labelled): the rejection ratio at
    which a perfect ranking's kappa is 1 ("kappa at prevalence")."""
    known = amenable >= 0
    return float(np.mean(amenable[known] == 0)) if known.any() else 0.0
