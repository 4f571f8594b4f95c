"""The paper's evaluation (sections 3-4) on the holdout split, written as `report.json` plus PNG plots.

report.json schema (all lists follow `rejection_ratios`):
- `task` ("classify"|"segment"), `metric` ("accuracy"|"dice"), `reward`, `algo`, `config`, `frames`, `subjects`;
- `rejection_ratios`: [0.0, 0.05, ..., 0.40]; `bootstrap_resamples`: subject-level resamples used;
- `curves`: {method: {"mean": [...], "std": [...], "point": [...]}}, the metric on the frames kept after
  removing the lowest-scored fraction; mean/std over the resamples, point on the full holdout set. Methods:
  `controller` (RL predictor, rejected by the controller), `random` (RL predictor, random rejection),
  `confidence` (RL predictor, rejected by its own confidence), `labels` (RL predictor, non-amenable
  ground-truth frames rejected first), and when a baseline predictor exists `baseline` (non-selective
  baseline, nothing rejected), `baseline_confidence`, `baseline_controller`, `baseline_labels`;
- `operating_point`: the paper's rejection ratio (0.05 classify, 0.15 segment);
- `contingency`: {method: [[subjective low & predicted low, subjective low & predicted high],
  [subjective high & predicted low, subjective high & predicted high]]} at the operating point, over
  frames with a known amenability label; `kappa`: {method: Cohen's kappa of that table};
- `kappa_at_prevalence`: {method: kappa when the rejected fraction equals the non-amenable fraction};
- `ttest`: paired t-test over subjects at the operating point, controller-selected RL predictor vs the
  non-selective baseline on all frames ({"t", "p", "mean_difference", "subjects"}; null without a baseline);
- `selective`: {rejector: {"aurc", "eaurc", "augrc", "failure_auroc", "risk_at_coverage": {"0.80", "0.90",
  "0.95"}}} (usqa/service/inference/selective.py) for the RL predictor's frames, rejectors `controller`,
  `confidence` (its softmax response), `labels` (ground-truth amenability) and `random` (a constant score:
  the exact expectation over random orders); risk is 1 - metric, the failure event a wrong class or Dice
  below `selective_definition["dice_tolerance"]`; undefined numbers (AUROC without failures) are null;
- `selective_intervals`: {rejector: {number: [low, high]}}, percentile 95 % over the subject-level resamples
  (number keys: aurc, eaurc, augrc, failure_auroc, risk_at_coverage_0.80, ...); `selective_definition`:
  {"risk", "failure", "dice_tolerance"};
- `rejectors`, `served_rejector`, `certification`, `display`, and the `selective` rows `softmax`, `doctor`
  and `fused`: usqa/trainer/amenability/rejection_report.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats
from torch import nn

from usqa.contracts.training import OPERATING_POINT
from usqa.service.inference.evaluation import METRIC_NAME, rejected_mask
from usqa.service.inference.selective import DICE_TOLERANCE, bootstrap_intervals, selective_metrics, task_risk
from usqa.trainer.amenability.agreement import cohens_kappa, contingency_table, non_amenable_fraction
from usqa.trainer.amenability.engine import frame_metric, infer
from usqa.trainer.amenability.rejection_report import (
    DEFAULT_TARGET,
    CertificationTarget,
    decide_rejection,
    split_outputs,
)
from usqa.trainer.amenability.rewards import frame_confidence
from usqa.trainer.amenability.run import load_network, load_run
from usqa.trainer.amenability.run_folder import BASELINE_FILE, CONTINGENCY_PNG, CURVES_PNG, write_report
from usqa.trainer.data import SplitTensors, load_task_data, reward_mask
from usqa.trainer.engine.device import resolve_device

REJECTION_RATIOS: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(9))


@dataclass(frozen=True)
class HoldoutScores:
    """Per-frame results on the holdout split; `None` where no baseline predictor was trained."""

    metric: np.ndarray
    controller: np.ndarray
    confidence: np.ndarray
    baseline_metric: np.ndarray | None
    baseline_confidence: np.ndarray | None
    amenable: np.ndarray
    subjects: np.ndarray


def score_holdout(
    task: str,
    controller: nn.Module,
    predictor: nn.Module,
    baseline: nn.Module | None,
    split: SplitTensors,
    device: torch.device,
) -> HoldoutScores:
    logits = infer(predictor.to(device), split.frames, device)
    base_logits = None if baseline is None else infer(baseline.to(device), split.frames, device)
    return HoldoutScores(
        metric=frame_metric(task, logits, split.targets).numpy(),
        controller=infer(controller.to(device), split.frames, device).numpy(),
        confidence=frame_confidence(logits).numpy(),
        baseline_metric=None
        if base_logits is None
        else frame_metric(task, base_logits, split.targets).numpy(),
        baseline_confidence=None if base_logits is None else frame_confidence(base_logits).numpy(),
        amenable=split.amenable.astype(np.int64),
        subjects=np.array(split.subjects),
    )


def rejection_curve(metric: np.ndarray, scores: np.ndarray, ratios: tuple[float, ...]) -> list[float]:
    """Mean metric of the frames kept after rejecting the lowest-scored fraction, for each ratio."""
    return [float(metric[~rejected_mask(scores, r)].mean()) for r in ratios]


Scorer = Callable[[np.ndarray, np.random.Generator], tuple[np.ndarray, np.ndarray]]


def _label_scores(amenable: np.ndarray, generator: np.random.Generator) -> np.ndarray:
    """Non-amenable (0) first, unknown (-1) counted as amenable, random order within each group."""
    return (amenable != 0).astype(np.float64) + 0.5 * generator.random(len(amenable))


def _methods(s: HoldoutScores) -> dict[str, Scorer]:
    """Each method maps frame indices to (metric, rejection score); lower scores are rejected first."""
    methods: dict[str, Scorer] = {
        "controller": lambda i, g: (s.metric[i], s.controller[i]),
        "random": lambda i, g: (s.metric[i], g.random(len(i))),
        "confidence": lambda i, g: (s.metric[i], s.confidence[i]),
        # The human (here: simulator ground-truth) amenability labels as the rejection rule, ties broken at
        # random: the ceiling of a controller that agreed with them perfectly (kappa = 1).
        "labels": lambda i, g: (s.metric[i], _label_scores(s.amenable[i], g)),
    }
    if s.baseline_metric is not None and s.baseline_confidence is not None:
        bm, bc = s.baseline_metric, s.baseline_confidence
        methods["baseline"] = lambda i, g: (bm[i], np.ones(len(i)))
        methods["baseline_confidence"] = lambda i, g: (bm[i], bc[i])
        methods["baseline_controller"] = lambda i, g: (bm[i], s.controller[i])
        methods["baseline_labels"] = lambda i, g: (bm[i], _label_scores(s.amenable[i], g))
    return methods


def bootstrap_curves(
    s: HoldoutScores, ratios: tuple[float, ...], resamples: int, seed: int
) -> dict[str, dict[str, list[float]]]:
    """Curves per method: point estimate on all frames, mean/std over subject-level bootstrap resamples."""
    generator = np.random.default_rng(seed)
    subjects = np.unique(s.subjects)
    by_subject = {subject: np.flatnonzero(s.subjects == subject) for subject in subjects}
    methods = _methods(s)
    everything = np.arange(len(s.metric))
    curves: dict[str, dict[str, Any]] = {
        name: {"point": rejection_curve(*scorer(everything, generator), ratios), "samples": []}
        for name, scorer in methods.items()
    }
    # "baseline" rejects nothing: its point curve is the flat mean metric on all frames.
    if "baseline" in curves and s.baseline_metric is not None:
        curves["baseline"]["point"] = [float(s.baseline_metric.mean())] * len(ratios)
    for _ in range(resamples):
        picked = generator.choice(subjects, len(subjects), replace=True)
        index = np.concatenate([by_subject[p] for p in picked])
        for name, scorer in methods.items():
            metric, score = scorer(index, generator)
            curve = (
                [float(metric.mean())] * len(ratios)
                if name == "baseline"
                else rejection_curve(metric, score, ratios)
            )
            curves[name]["samples"].append(curve)
    out: dict[str, dict[str, list[float]]] = {}
    for name, c in curves.items():
        samples = np.array(c["samples"]) if c["samples"] else np.array([c["point"]])
        out[name] = {"mean": samples.mean(0).tolist(), "std": samples.std(0).tolist(), "point": c["point"]}
    return out


def paired_ttest(s: HoldoutScores, ratio: float) -> dict[str, float] | None:
    """Per-subject metric of the controller-selected RL predictor vs the baseline on all of the subject's frames."""
    if s.baseline_metric is None:
        return None
    kept = ~rejected_mask(s.controller, ratio)
    selected, base = [], []
    for subject in np.unique(s.subjects):
        mine = s.subjects == subject
        if (mine & kept).any():
            selected.append(float(s.metric[mine & kept].mean()))
            base.append(float(s.baseline_metric[mine].mean()))
    if len(selected) < 2:
        return None
    result = stats.ttest_rel(selected, base)
    return {
        "t": float(result.statistic),
        "p": float(result.pvalue),
        "mean_difference": float(np.mean(np.subtract(selected, base))),
        "subjects": len(selected),
    }


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def selective_section(
    task: str,
    s: HoldoutScores,
    resamples: int,
    seed: int,
    fitted: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """The field's numbers per rejector of the RL predictor, with subject-level intervals; `fitted`: the
    fitted rejectors' holdout scores (usqa/trainer/amenability/rejection_report.py)."""
    risks, failures = task_risk(task, s.metric)
    rejectors = {
        "controller": s.controller,
        "confidence": s.confidence,
        **(fitted or {}),
        "labels": (s.amenable != 0).astype(np.float64),  # unknown (-1) counted as amenable
        "random": np.zeros(len(s.metric)),
    }
    selective: dict[str, Any] = {}
    intervals: dict[str, Any] = {}
    for name, scores in rejectors.items():
        metrics = selective_metrics(scores, risks, failures)
        selective[name] = {**metrics.as_dict(), "failure_auroc": _finite_or_none(metrics.failure_auroc)}
        if resamples > 0:
            found = bootstrap_intervals(scores, risks, failures, s.subjects, n_resamples=resamples, seed=seed)
            intervals[name] = {k: [_finite_or_none(v) for v in pair] for k, pair in found.items()}
    definition = {
        "risk": f"1 - {METRIC_NAME[task]}",
        "failure": "wrong class" if task == "classify" else "dice < dice_tolerance",
        "dice_tolerance": None if task == "classify" else DICE_TOLERANCE,
    }
    return {"selective": selective, "selective_intervals": intervals, "selective_definition": definition}


def build_report(
    task: str,
    s: HoldoutScores,
    resamples: int,
    seed: int,
    extra: dict[str, Any],
    fitted: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    ratio = OPERATING_POINT[task]
    prevalence = non_amenable_fraction(s.amenable)
    rankings = {"controller": s.controller, "confidence": s.confidence}
    if s.baseline_confidence is not None:
        rankings["baseline_confidence"] = s.baseline_confidence
    rejected = {k: rejected_mask(v, ratio) for k, v in rankings.items()}
    contingency = {k: contingency_table(r, s.amenable) for k, r in rejected.items()}
    at_prevalence = {k: cohens_kappa(rejected_mask(v, prevalence), s.amenable) for k, v in rankings.items()}
    return {
        "task": task,
        "metric": METRIC_NAME[task],
        **extra,
        "frames": len(s.metric),
        "subjects": len(np.unique(s.subjects)),
        "rejection_ratios": list(REJECTION_RATIOS),
        "bootstrap_resamples": resamples,
        "curves": bootstrap_curves(s, REJECTION_RATIOS, resamples, seed),
        "operating_point": ratio,
        "contingency": contingency,
        "kappa": {k: cohens_kappa(r, s.amenable) for k, r in rejected.items()},
        "non_amenable_fraction": prevalence,
        "kappa_at_prevalence": at_prevalence,
        "ttest": paired_ttest(s, ratio),
        **selective_section(task, s, resamples, seed, fitted),
    }


def evaluate(
    run_dir: Path | str,
    data_dir: Path | str,
    out_dir: Path | str,
    *,
    baseline_run: Path | str | None = None,
    resamples: int = 200,
    seed: int = 0,
    device: str = "cpu",
    plots: bool = True,
    target: CertificationTarget = DEFAULT_TARGET,
) -> dict[str, Any]:
    """Evaluate a run on the holdout split of `data_dir`; write report.json (+ PNGs) into `out_dir`.

    `baseline_run` names another run whose `baseline.pt` to compare with, when this run trained none;
    `target` the certification's alpha and delta, and a forced served rejector.
    """
    config, controller, predictor, baseline = load_run(run_dir)
    if baseline_run is not None:
        baseline = load_network(Path(baseline_run) / BASELINE_FILE, "predictor")
    torch_device = resolve_device(device)
    data = load_task_data(data_dir, replace(config, device=device))
    scores = score_holdout(config.task, controller, predictor, baseline, data.holdout, torch_device)
    extra = {"reward": config.reward.kind, "algo": config.algo, "config": config.name, "run": str(run_dir)}
    val, holdout = (
        split_outputs(config.task, controller, predictor, split, torch_device)
        for split in (data.val, data.holdout)
    )
    rejection = decide_rejection(config.task, val, holdout, target, seed, reward_mask(data.val, config))
    report = {
        **build_report(config.task, scores, resamples, seed, extra, dict(rejection.holdout_scores)),
        **rejection.sections(),
    }
    out = write_report(report, out_dir).parent
    if plots:
        from usqa.trainer.amenability.plots import plot_contingency, plot_curves

        plot_curves(report, out / CURVES_PNG)
        plot_contingency(report, out / CONTINGENCY_PNG)
    return report
