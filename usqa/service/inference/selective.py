"""Selective-prediction metrics: how well a rejector's score ranks the frames on which the task model fails.

A rejector gives each frame a confidence score (higher = keep); the task gives each frame a risk (its loss:
classification 0/1 for a wrong class, segmentation 1 - Dice) and a failure event (a wrong class; Dice below a
stated tolerance). Definitions, as in the selective-prediction literature (Geifman & El-Yaniv 2017; FD-Shifts,
Jaeger et al., ICLR 2023; Traub et al., NeurIPS 2024):

- risk-coverage curve: one point per distinct score, frames accepted from the highest score down; frames with
  equal scores enter together (no arbitrary tie-break). coverage = accepted / all; selective risk = mean risk of
  the accepted frames; generalized risk = summed risk of the accepted frames / all frames.
- AURC: Geifman's mean of the selective risks at coverages 1/n, 2/n, ..., 1. Inside a group of equal scores the
  accepted risk grows linearly, its expectation over the orders of the tied frames (FD-Shifts' "non-linear"
  interpolation, taken at the n frame positions), so no tie-break is arbitrary and a constant score gets the
  mean risk.
- E-AURC: AURC minus the AURC of the oracle that accepts frames in ascending order of risk; an oracle score
  (e.g. minus the risk) gets 0, ties included.
- AUGRC: trapezoidal area under (coverage, generalized risk), starting at (0, 0), as FD-Shifts computes it;
  the oracle of binary risks with error rate e gets e^2 / 2.
- failure-detection AUROC: P(score of a success > score of a failure), ties counted half; NaN without both.
- selective risk at coverage c: at the first curve point whose coverage reaches c.
- intervals: subjects resampled with replacement (a seeded generator), percentile 95 % interval.

numpy only: the runtime and the trainer share it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COVERAGES: tuple[str, ...] = ("0.80", "0.90", "0.95")
# A segmentation counts as failed below this Dice (the failure event of the failure-detection AUROC and of
# the certified pass line).
DICE_TOLERANCE = 0.8
METRICS: tuple[str, ...] = ("aurc", "eaurc", "augrc", "failure_auroc")


@dataclass(frozen=True)
class RiskCoverageCurve:
    """One point per distinct score, from the highest (lowest coverage) to the lowest (coverage 1)."""

    thresholds: np.ndarray
    coverages: np.ndarray
    selective_risks: np.ndarray
    generalized_risks: np.ndarray


@dataclass(frozen=True)
class SelectiveMetrics:
    """The field's numbers for one rejector on one set of frames."""

    aurc: float
    eaurc: float
    augrc: float
    failure_auroc: float
    risk_at_coverage: dict[str, float]

    def as_dict(self) -> dict[str, object]:
        return {
            "aurc": self.aurc,
            "eaurc": self.eaurc,
            "augrc": self.augrc,
            "failure_auroc": self.failure_auroc,
            "risk_at_coverage": dict(self.risk_at_coverage),
        }


def classification_risk(predicted: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame (risk, failure): 0/1 loss, and a failure is a wrong class."""
    failures = np.asarray(predicted) != np.asarray(labels)
    return failures.astype(np.float64), failures


def segmentation_risk(dice: np.ndarray, tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame (risk, failure): 1 - Dice, and a failure is Dice below `tolerance`."""
    dice = np.asarray(dice, dtype=np.float64)
    return 1.0 - dice, dice < tolerance


def task_risk(task: str, metric: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame (risk, failure) of a task's per-frame metric (accuracy 0/1, or Dice)."""
    metric = np.asarray(metric, dtype=np.float64)
    if task == "classify":
        return 1.0 - metric, metric < 1.0
    return segmentation_risk(metric, DICE_TOLERANCE)


def _checked(scores: np.ndarray, risks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64).ravel()
    risks = np.asarray(risks, dtype=np.float64).ravel()
    if scores.shape != risks.shape or scores.size == 0:
        raise ValueError(
            f"need as many scores as risks, at least one: {scores.size} scores, {risks.size} risks"
        )
    if not (np.isfinite(scores).all() and np.isfinite(risks).all()):
        raise ValueError("scores and risks must be finite")
    return scores, risks


def risk_coverage_curve(scores: np.ndarray, risks: np.ndarray) -> RiskCoverageCurve:
    """The risk-coverage curve; equal scores enter together."""
    scores, risks = _checked(scores, risks)
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    cumulative = np.cumsum(risks[order])
    # the last frame of each group of equal scores: where the next score differs, and the end
    ends = np.flatnonzero(np.r_[sorted_scores[1:] != sorted_scores[:-1], True])
    accepted = ends + 1.0
    n = scores.size
    return RiskCoverageCurve(
        thresholds=sorted_scores[ends],
        coverages=accepted / n,
        selective_risks=cumulative[ends] / accepted,
        generalized_risks=cumulative[ends] / n,
    )


def _expected_cumulative_risk(scores: np.ndarray, risks: np.ndarray) -> np.ndarray:
    """Accepted risk after 1, 2, ..., n frames, linear inside each group of equal scores."""
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    sorted_risks = risks[order]
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    sizes = np.diff(np.r_[starts, scores.size])
    group_totals = np.add.reduceat(sorted_risks, starts)
    before = np.r_[0.0, np.cumsum(group_totals)[:-1]]
    group = np.repeat(np.arange(starts.size), sizes)
    taken = np.arange(1, scores.size + 1) - starts[group]
    return before[group] + taken * (group_totals / sizes)[group]


def _trapezoid_area(coverages: np.ndarray, values: np.ndarray) -> float:
    x = np.r_[0.0, coverages]
    y = np.r_[0.0, values]
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0))


def aurc(scores: np.ndarray, risks: np.ndarray) -> float:
    scores, risks = _checked(scores, risks)
    accepted = np.arange(1, scores.size + 1, dtype=np.float64)
    return float(np.mean(_expected_cumulative_risk(scores, risks) / accepted))


def oracle_aurc(risks: np.ndarray) -> float:
    """AURC of the ranking that accepts the lowest risks first, one frame at a time."""
    risks = np.sort(np.asarray(risks, dtype=np.float64).ravel())
    accepted = np.arange(1, risks.size + 1, dtype=np.float64)
    return float(np.mean(np.cumsum(risks) / accepted))


def augrc(scores: np.ndarray, risks: np.ndarray) -> float:
    curve = risk_coverage_curve(scores, risks)
    return _trapezoid_area(curve.coverages, curve.generalized_risks)


def failure_auroc(scores: np.ndarray, failures: np.ndarray) -> float:
    """P(a success scores above a failure), ties half (Mann-Whitney U / (n_fail n_success)); NaN without both."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    failures = np.asarray(failures, dtype=bool).ravel()
    if scores.shape != failures.shape:
        raise ValueError(f"need as many scores as failure flags: {scores.size} and {failures.size}")
    n_fail = int(failures.sum())
    n_success = failures.size - n_fail
    if n_fail == 0 or n_success == 0:
        return float("nan")
    ranks = _average_ranks(scores)
    u_success = float(ranks[~failures].sum()) - n_success * (n_success + 1) / 2.0
    return u_success / (n_fail * n_success)


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, equal values sharing the mean of their ranks."""
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], values.size]
    group_rank = (starts + ends + 1) / 2.0  # mean of ranks starts+1 .. ends
    sizes = ends - starts
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.repeat(group_rank, sizes)
    return ranks


def risk_at_coverage(curve: RiskCoverageCurve, coverage: float) -> float:
    """Selective risk at the first curve point whose coverage reaches `coverage`."""
    index = int(np.searchsorted(curve.coverages, coverage - 1e-12, side="left"))
    return float(curve.selective_risks[min(index, curve.coverages.size - 1)])


def selective_metrics(scores: np.ndarray, risks: np.ndarray, failures: np.ndarray) -> SelectiveMetrics:
    """Every number for one rejector."""
    scores, risks = _checked(scores, risks)
    curve = risk_coverage_curve(scores, risks)
    area = aurc(scores, risks)
    return SelectiveMetrics(
        aurc=area,
        eaurc=area - oracle_aurc(risks),
        augrc=_trapezoid_area(curve.coverages, curve.generalized_risks),
        failure_auroc=failure_auroc(scores, failures),
        risk_at_coverage={c: risk_at_coverage(curve, float(c)) for c in COVERAGES},
    )


def _flat(metrics: SelectiveMetrics) -> dict[str, float]:
    values = {name: float(getattr(metrics, name)) for name in METRICS}
    values.update({f"risk_at_coverage_{c}": v for c, v in metrics.risk_at_coverage.items()})
    return values


def bootstrap_intervals(
    scores: np.ndarray,
    risks: np.ndarray,
    failures: np.ndarray,
    subjects: np.ndarray,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Percentile 95 % intervals, resampling subjects with replacement; keys as `_flat` (risk_at_coverage_0.80, ...).

    A resample where a number is undefined (AUROC with no failures) is left out of that number's interval; an
    interval with no defined resample is (nan, nan).
    """
    scores, risks = _checked(scores, risks)
    failures = np.asarray(failures, dtype=bool).ravel()
    subjects = np.asarray(subjects).ravel()
    if subjects.shape != scores.shape or failures.shape != scores.shape:
        raise ValueError("need one subject and one failure flag per frame")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}")
    unique, subject_index = np.unique(subjects, return_inverse=True)
    frames_of = [np.flatnonzero(subject_index == k) for k in range(unique.size)]
    generator = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {}
    for _ in range(n_resamples):
        drawn = generator.integers(0, unique.size, size=unique.size)
        frames = np.concatenate([frames_of[k] for k in drawn])
        values = _flat(selective_metrics(scores[frames], risks[frames], failures[frames]))
        for key, value in values.items():
            samples.setdefault(key, []).append(value)
    intervals: dict[str, tuple[float, float]] = {}
    for key, values_list in samples.items():
        defined = np.asarray(values_list)
        defined = defined[np.isfinite(defined)]
        if defined.size == 0:
            intervals[key] = (float("nan"), float("nan"))
        else:
            low, high = np.percentile(defined, [2.5, 97.5])
            intervals[key] = (float(low), float(high))
    return intervals
