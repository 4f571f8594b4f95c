"""The honest verdict of a training run: is its predictor better than a trivial one, does its controller rank?

Computed on the validation split (never the holdout) at the end of every `train()` and written as
`verdict.json` in the run folder; `usqa export` and the promotion gate refuse a version whose verdict failed,
unless forced. verdict.json:

- `task`, `metric` ("accuracy" | "dice"), `split` ("val"), `frames`;
- `predictor`: {"metric", "trivial", "trivial_rule", "margin", "margin_se", "margin_frames", "lower_bound", "test",
  "min_margin", "beats_trivial"}: the trained predictor's mean metric on all validation frames next to the
  trivial predictor's (classification: always the training split's majority class; segmentation: the better of
  an empty and a full mask, since a collapsed U-Net that marks everything scores 2|T| / (|T| + N) > 0 on small
  targets); `margin` is the mean of the per-frame paired differences d_i = metric_i(predictor) -
  metric_i(trivial), `margin_se` its standard error std(d, ddof=1) / sqrt(n) over `margin_frames` = n frames,
  `lower_bound` = margin - 1.645 SE (one-sided 95 %); it beats the trivial predictor when `lower_bound > 0` and
  `margin > min_margin`. Verdicts written before the test record `margin` as the required minimum (0.01) and
  no `margin_se`;
- `baseline_predictor`: the non-selective baseline's metric on the same frames (null without one);
- `controller`: {"score_spread" (95th - 5th percentile of the validation scores), "score_std", "kappa" (Cohen's
  kappa of "rejected at the operating point" vs "labelled non-amenable"; null without labels),
  "kappa_at_prevalence" (the same with as many frames rejected as are labelled non-amenable: kappa at a fixed
  5 % cannot reach 1 when more than 5 % are), "labelled_frames", "operating_point"};
- `passed`, and `reasons`: [{"code", "message"}] for each failed rule (empty when passed).

Refusal rules: the predictor does not beat the trivial predictor beyond chance (`paired_margin`: the one-sided
95 % lower bound of the paired margin is not above 0, or the margin is not above `MIN_MARGIN`); the controller's
score spread is below `MIN_SPREAD` (it gives every frame the same score, so thresholds cannot rank frames); or,
where at least `MIN_LABELLED` validation frames carry an amenability label, the controller's kappa is <= 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from usqa.contracts.training import OPERATING_POINT, TrainConfig
from usqa.service.inference.evaluation import METRIC_NAME, rejected_mask
from usqa.trainer.amenability.agreement import cohens_kappa, non_amenable_fraction
from usqa.trainer.amenability.engine import Z_ONE_SIDED_95, frame_metric, infer
from usqa.trainer.data import SplitTensors

# The predictor must beat the trivial one by a point, not by the noise of a tie (accuracy or Dice, 0..1).
MIN_MARGIN = 0.01
# The paired margin's lower bound is margin - Z_ONE_SIDED_95 * SE.
PAIRED_TEST = "paired per-frame differences, one-sided 95 % normal bound: margin - 1.645 SE > 0"
# Scores within a thousandth of each other cannot be told apart by calibrated thresholds.
MIN_SPREAD = 1e-3
MIN_LABELLED = 10

TRIVIAL_PREDICTOR = "trivial_predictor"
CONTROLLER_NO_SPREAD = "controller_no_spread"
CONTROLLER_KAPPA = "controller_kappa"
MSG_TRIVIAL_PREDICTOR = (
    "the predictor does not beat the trivial baseline beyond chance on the validation split: {metric} {value:.3f}"
    " vs {trivial:.3f} for {rule}, margin {margin:+.3f} ± {se:.3f} (1 SE over {frames} frames), one-sided "
    "95 % lower bound {lower:+.3f} (needs > 0 and a margin > {min_margin}); try more episodes or --config "
    "default, a smaller frame size, the predictor recipe (warm-up, augmentation, balanced sampling: "
    "docs/recipe.md), or check the labels"
)
MSG_CONTROLLER_NO_SPREAD = (
    "the controller gives every validation frame about the same score (spread {spread:.1e} < {min_spread}), "
    "so no threshold can rank frames; try more episodes, another reward (--reward selective) or check that "
    "the data set has frames of differing quality"
)
MSG_CONTROLLER_KAPPA = (
    "the controller disagrees with the amenability labels: kappa {kappa:.3f} <= 0 on {frames} labelled "
    "validation frames at {rejection:.0%} rejection; try more episodes, another reward (--reward weighted or "
    "selective), class-balanced sampling off, or check the labels"
)
MSG_REFUSED = "{what} refused: {reasons} (pass --force to publish anyway)"
MSG_REFUSED_JOB = "{what} refused: {reasons} (set force: true in the job spec to publish anyway)"


@dataclass(frozen=True)
class PairedMargin:
    """How far the predictor is above the trivial one on the same frames, and how sure that is."""

    margin: float
    se: float
    frames: int

    @property
    def lower_bound(self) -> float:
        return self.margin - Z_ONE_SIDED_95 * self.se

    @property
    def beats(self) -> bool:
        return self.lower_bound > 0 and self.margin > MIN_MARGIN

    def as_fields(self) -> dict[str, Any]:
        return {
            "margin": self.margin,
            "margin_se": self.se,
            "margin_frames": self.frames,
            "lower_bound": self.lower_bound,
            "test": PAIRED_TEST,
            "min_margin": MIN_MARGIN,
        }


def paired_margin(predictor: np.ndarray, trivial: np.ndarray) -> PairedMargin:
    """The mean per-frame difference predictor - trivial and its standard error.

    A normal bound on paired differences rather than a paired bootstrap: it is deterministic (a verdict must
    not depend on a resampling seed) and closed-form, and on planted cases of 180-752 frames the two lower
    bounds differed by at most 0.003 (20,000 resamples), the normal one the more cautious where few frames
    differ. For classification the differences are -1, 0 or 1 per frame, so this is the large-sample form of
    McNemar's test of the discordant frames. Fewer than two frames give an infinite error (nothing is
    established); a predictor identical to the trivial one has all d = 0, SE 0 and a lower bound of 0, which is
    not above 0.
    """
    d = np.asarray(predictor, np.float64) - np.asarray(trivial, np.float64)
    n = len(d)
    if n == 0:
        return PairedMargin(0.0, float("inf"), 0)
    se = float(np.std(d, ddof=1) / np.sqrt(n)) if n > 1 else float("inf")
    return PairedMargin(float(d.mean()), se, n)


@dataclass(frozen=True)
class Reason:
    code: str
    message: str


@dataclass(frozen=True)
class Verdict:
    task: str
    metric: str
    frames: int
    predictor: dict[str, Any]
    baseline_predictor: dict[str, float] | None
    controller: dict[str, Any]
    reasons: list[Reason] = field(default_factory=list)
    split: str = "val"

    @property
    def passed(self) -> bool:
        return not self.reasons

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}

    def summary(self) -> str:
        """Three lines for the terminal: predictor vs trivial, controller, and the outcome."""
        p, c = self.predictor, self.controller
        base = self.baseline_predictor
        lines = [
            f"verdict ({self.split}, {self.frames} frames): predictor {self.metric} {p['metric']:.3f} vs trivial "
            f"{p['trivial']:.3f} ({p['trivial_rule']})"
            + _margin_words(p)
            + ("" if base is None else f"; non-selective baseline {base['metric']:.3f}"),
            f"  controller: score spread {c['score_spread']:.3f}, kappa "
            + (
                f"n/a (< {MIN_LABELLED} labelled)"
                if c["kappa"] is None
                else f"{c['kappa']:.3f} at {c['operating_point']:.0%}" + _at_prevalence(c)
            )
            + f" on {c['labelled_frames']} labelled frames",
            "  passed" if self.passed else "  FAILED: " + "; ".join(r.message for r in self.reasons),
        ]
        return "\n".join(lines)


def _margin_words(predictor: dict[str, Any]) -> str:
    if predictor.get("margin_se") is None:  # verdicts written before the paired test record no error
        return ""
    return (
        f", margin {predictor['margin']:+.3f} ± {predictor['margin_se']:.3f} (1 SE over "
        f"{predictor['margin_frames']} frames; 95 % lower bound {predictor['lower_bound']:+.3f})"
    )


def _at_prevalence(controller: dict[str, Any]) -> str:
    value = controller.get("kappa_at_prevalence")  # absent from verdicts written before it was recorded
    return "" if value is None else f", {value:.3f} at prevalence"


def trivial_predictions(task: str, train: SplitTensors, val: SplitTensors) -> list[tuple[torch.Tensor, str]]:
    """Logits of each trivial predictor on the validation frames, with its rule in words."""
    if task == "classify":
        majority = int(torch.bincount(train.targets).argmax())
        classes = int(max(train.targets.max(), val.targets.max())) + 1
        logits = torch.zeros(len(val), classes)
        logits[:, majority] = 1.0
        return [(logits, f"always class {majority} (the training majority)")]
    empty = torch.zeros(len(val), 2, *val.targets.shape[1:])
    empty[:, 0] = 1.0
    return [(empty, "an empty mask"), (empty.flip(1), "a full mask")]


def trivial_frame_metric(task: str, train: SplitTensors, val: SplitTensors) -> tuple[np.ndarray, str]:
    """The best (by mean) trivial predictor's per-frame validation metric, and its rule."""
    scored = [
        (frame_metric(task, logits, val.targets).numpy().astype(np.float64), rule)
        for logits, rule in trivial_predictions(task, train, val)
    ]
    return max(scored, key=lambda x: float(x[0].mean()))


def trivial_metric(task: str, train: SplitTensors, val: SplitTensors) -> tuple[float, str]:
    """The best trivial predictor's mean validation metric, and its rule."""
    per_frame, rule = trivial_frame_metric(task, train, val)
    return float(per_frame.mean()), rule


def judge(
    task: str,
    predictor_frames: np.ndarray,
    trivial_frames: np.ndarray,
    rule: str,
    scores: np.ndarray,
    amenable: np.ndarray,
    baseline_metric: float | None = None,
) -> Verdict:
    """Apply the refusal rules (module docstring) to per-frame validation metrics and controller scores."""
    reasons: list[Reason] = []
    metric = float(np.mean(predictor_frames)) if len(predictor_frames) else 0.0
    trivial = float(np.mean(trivial_frames)) if len(trivial_frames) else 0.0
    paired = paired_margin(predictor_frames, trivial_frames)
    if not paired.beats:
        reasons.append(
            Reason(
                TRIVIAL_PREDICTOR,
                MSG_TRIVIAL_PREDICTOR.format(
                    metric=METRIC_NAME[task],
                    value=metric,
                    trivial=trivial,
                    rule=rule,
                    margin=paired.margin,
                    se=paired.se,
                    frames=paired.frames,
                    lower=paired.lower_bound,
                    min_margin=MIN_MARGIN,
                ),
            )
        )
    spread = float(np.quantile(scores, 0.95) - np.quantile(scores, 0.05)) if len(scores) else 0.0
    if spread < MIN_SPREAD:
        reasons.append(
            Reason(
                CONTROLLER_NO_SPREAD, MSG_CONTROLLER_NO_SPREAD.format(spread=spread, min_spread=MIN_SPREAD)
            )
        )
    labelled = int(np.sum(amenable >= 0))
    rejection = OPERATING_POINT[task]
    kappa: float | None = None
    at_prevalence: float | None = None
    if labelled >= MIN_LABELLED:
        kappa = cohens_kappa(rejected_mask(scores, rejection), amenable)
        # At a fixed 5 % kappa is capped when more frames than that are non-amenable; rejecting as many
        # frames as are non-amenable gives the uncapped view (1.0 for a perfect ranking).
        at_prevalence = cohens_kappa(rejected_mask(scores, non_amenable_fraction(amenable)), amenable)
        if kappa <= 0:
            reasons.append(
                Reason(
                    CONTROLLER_KAPPA,
                    MSG_CONTROLLER_KAPPA.format(kappa=kappa, frames=labelled, rejection=rejection),
                )
            )
    return Verdict(
        task=task,
        metric=METRIC_NAME[task],
        frames=len(scores),
        predictor={
            "metric": metric,
            "trivial": trivial,
            "trivial_rule": rule,
            **paired.as_fields(),
            "beats_trivial": paired.beats,
        },
        baseline_predictor=None if baseline_metric is None else {"metric": baseline_metric},
        controller={
            "score_spread": spread,
            "score_std": float(np.std(scores)) if len(scores) else 0.0,
            "kappa": kappa,
            "kappa_at_prevalence": at_prevalence,
            "labelled_frames": labelled,
            "operating_point": rejection,
        },
        reasons=reasons,
    )


def compute_verdict(
    config: TrainConfig,
    controller: nn.Module,
    predictor: nn.Module,
    baseline: nn.Module | None,
    train: SplitTensors,
    val: SplitTensors,
    device: torch.device | str = "cpu",
) -> Verdict:
    """The verdict of trained networks on the validation split (see the module docstring)."""
    device = torch.device(device)
    task = config.task
    per_frame = frame_metric(task, infer(predictor.to(device), val.frames, device), val.targets).numpy()
    trivial, rule = trivial_frame_metric(task, train, val)
    base = None
    if baseline is not None:
        base = float(frame_metric(task, infer(baseline.to(device), val.frames, device), val.targets).mean())
    scores = infer(controller.to(device), val.frames, device).numpy()
    return judge(
        task, per_frame.astype(np.float64), trivial, rule, scores, val.amenable.astype(np.int64), base
    )


def refusal(verdict: dict[str, Any], what: str, job: bool = False) -> str | None:
    """The refusal message for a failed verdict (as written in verdict.json), or None when it passed."""
    if verdict.get("passed", True):
        return None
    reasons = "; ".join(r["message"] for r in verdict.get("reasons", []))
    return (MSG_REFUSED_JOB if job else MSG_REFUSED).format(what=what, reasons=reasons)
