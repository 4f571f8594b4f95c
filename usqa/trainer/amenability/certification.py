"""A certified pass line: among frames called good, the task model fails at most `alpha` of the time, with
probability at least 1 - `delta`, on frames exchangeable with the calibration frames.

Learn-then-Test (Angelopoulos, Bates, Candes, Jordan and Lei, 2021) with fixed-sequence testing:
- The candidate lines are fixed before the calibration frames are looked at: the served rejector's
  validation-score quantiles at coverages 0.30, 0.31, ..., 1.00, strictest first.
- For each line, H0 says the failure rate of the frames it accepts exceeds alpha. The frames a line accepts
  are i.i.d. draws from the frames above it, so with n accepted and k failures, p = P(Binomial(n, alpha) <= k)
  is a valid p-value (exact: failures are 0/1).
- Lines are tested in order and testing stops at the first p > delta. The family-wise error is delta with no
  correction, and the most lenient line rejected is certified.
- Nothing is certified if the first line already fails. The reason says which: too few calibration frames,
  or too many failures above the strictest line.

The calibration frames are half of the holdout split's subjects, drawn by a seeded generator. The other half
(the check) measures the coverage and risk at the certified line. Validation frames trained the run, so they
do not certify it. The display score is P(the task model is right | the served score), an isotonic fit on
the calibration frames, interpolated between its blocks so that it strictly increases where they differ.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from usqa.service.registry import Certification

# The promise's risk by task, decided on the development set (docs/rejection.md): a classifier there errs on
# about 5 % of validation frames, so a 5 % promise would call every in-scope frame good and guide nobody;
# segmentation's failure (Dice < 0.8) is more frequent, and 5 % still asks the line to work.
DEFAULT_ALPHA: dict[str, float] = {"classify": 0.02, "segment": 0.05}
DEFAULT_DELTA = 0.10
STRICTEST_COVERAGE = 0.30
LINE_STEP = 0.01
MIN_CALIBRATION_FRAMES = 30
METHOD = "learn-then-test, fixed sequence, binomial p-values"


def candidate_lines(validation_scores: np.ndarray) -> np.ndarray:
    """The lines to test, strictest first: validation-score quantiles at coverages 0.30 ... 1.00."""
    coverages = np.round(np.arange(STRICTEST_COVERAGE, 1.0 + LINE_STEP / 2, LINE_STEP), 6)
    return np.quantile(np.asarray(validation_scores, np.float64), 1.0 - coverages)


def calibration_subjects(subjects: np.ndarray, seed: int) -> np.ndarray:
    """A boolean mask of the frames whose subject is drawn into the calibration half (seeded)."""
    unique = np.unique(np.asarray(subjects))
    drawn = np.random.default_rng(seed).permutation(unique.size)[: max(1, unique.size // 2)]
    return np.isin(subjects, unique[drawn])


def binomial_p_value(failures: int, accepted: int, alpha: float) -> float:
    """P(Binomial(accepted, alpha) <= failures): small when the accepted frames fail less often than alpha."""
    return float(stats.binom.cdf(failures, accepted, alpha))


def _coverage_and_risk(scores: np.ndarray, failures: np.ndarray, line: float) -> tuple[float, float | None]:
    accepted = scores >= line
    n = int(accepted.sum())
    return n / max(1, scores.size), (float(failures[accepted].mean()) if n else None)


def certify(
    lines: np.ndarray,
    calibration_scores: np.ndarray,
    calibration_failures: np.ndarray,
    check_scores: np.ndarray,
    check_failures: np.ndarray,
    *,
    calibration_subject_count: int,
    alpha: float,
    delta: float = DEFAULT_DELTA,
) -> Certification:
    """The most lenient of `lines` that fixed-sequence testing certifies at (alpha, delta); see the module."""
    if not (0 < alpha < 1 and 0 < delta < 1):
        raise ValueError(f"alpha and delta must be in (0, 1), got {alpha} and {delta}")
    scores = np.asarray(calibration_scores, np.float64)
    failures = np.asarray(calibration_failures, bool)
    check_scores = np.asarray(check_scores, np.float64)
    check_failures = np.asarray(check_failures, bool)

    def result(line: float | None, reason: str) -> Certification:
        cal_cov, cal_risk = (None, None) if line is None else _coverage_and_risk(scores, failures, line)
        hold_cov, hold_risk = (
            (None, None)
            if line is None or not check_scores.size
            else _coverage_and_risk(check_scores, check_failures, line)
        )
        return Certification(
            alpha=alpha,
            delta=delta,
            threshold=line,
            certified=line is not None,
            reason=reason,
            method=METHOD,
            calibration_frames=int(scores.size),
            calibration_subjects=calibration_subject_count,
            calibration_coverage=cal_cov,
            calibration_risk=cal_risk,
            holdout_frames=int(check_scores.size),
            holdout_coverage=hold_cov,
            holdout_risk=hold_risk,
        )

    # With no failure at all, n frames reach p = (1 - alpha)^n: below delta needs this many above the line.
    needed = math.ceil(math.log(delta) / math.log(1.0 - alpha))
    if scores.size < max(MIN_CALIBRATION_FRAMES, needed):
        return result(
            None,
            f"too few calibration frames: {scores.size}, and a line at alpha {alpha} with confidence "
            f"{1 - delta:.2f} needs at least {max(MIN_CALIBRATION_FRAMES, needed)}",
        )
    certified: float | None = None
    for line in np.asarray(lines, np.float64):
        accepted = scores >= line
        n, k = int(accepted.sum()), int(failures[accepted].sum())
        if n == 0 or binomial_p_value(k, n, alpha) > delta:
            if certified is None:
                return result(
                    None,
                    f"risk too high: above the strictest line ({n} of {scores.size} calibration frames) the "
                    f"task model fails on {k} ({k / max(1, n):.1%}), not certifiably below alpha {alpha}",
                )
            break
        certified = float(line)
    assert certified is not None
    return result(
        certified,
        f"certified: among frames at or above the line the task model fails at most {alpha:.0%} of the time, "
        f"with probability at least {1 - delta:.0%} ({scores.size} calibration frames)",
    )


def correctness_calibration(scores: np.ndarray, failures: np.ndarray) -> tuple[list[float], list[float]]:
    """Breakpoints (x, y) of P(right | score): pool adjacent violators, one point per block at its mean score,
    so the interpolated map strictly increases between blocks (flat only beyond the end points)."""
    order = np.argsort(scores, kind="stable")
    x = np.asarray(scores, np.float64)[order]
    y = 1.0 - np.asarray(failures, np.float64)[order]
    blocks: list[list[float]] = []  # [sum y, count, sum x]
    for xi, yi in zip(x, y, strict=True):
        blocks.append([yi, 1.0, xi])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] >= blocks[-1][0] / blocks[-1][1]:
            s, n, sx = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += n
            blocks[-1][2] += sx
    xs = [b[2] / b[1] for b in blocks]
    ys = [b[0] / b[1] for b in blocks]
    return [float(v) for v in xs], [round(float(v), 6) for v in ys]


def expected_calibration_error(
    probabilities: np.ndarray, correct: np.ndarray, bins: int = 10
) -> tuple[float, list[dict[str, float]]]:
    """ECE over equal-width bins and the reliability diagram's bins (mean predicted, observed, frames)."""
    probabilities = np.asarray(probabilities, np.float64)
    correct = np.asarray(correct, np.float64)
    index = np.clip((probabilities * bins).astype(int), 0, bins - 1)
    ece, diagram = 0.0, []
    for b in range(bins):
        members = index == b
        if not members.any():
            continue
        predicted, observed = float(probabilities[members].mean()), float(correct[members].mean())
        ece += members.mean() * abs(predicted - observed)
        diagram.append({"predicted": predicted, "observed": observed, "frames": int(members.sum())})
    return float(ece), diagram
