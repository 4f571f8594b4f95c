"""Holdout figures of an adapted pair: the predictor's metric, balanced accuracy, the controller's kappa (at
the operating point and at prevalence), score spread and its metric after rejecting 5 % / 15 % of frames
(the paper's operating points)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from usqa.contracts.training import OPERATING_POINT
from usqa.service.inference.evaluation import rejected_mask
from usqa.trainer.amenability.agreement import cohens_kappa, non_amenable_fraction
from usqa.trainer.amenability.engine import frame_metric, infer
from usqa.trainer.amenability.evaluate import rejection_curve
from usqa.trainer.data import SplitTensors

REJECTIONS: tuple[float, ...] = (0.05, 0.15)


def balanced_accuracy(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Mean of the per-class recalls over the classes present in `truth`."""
    recalls = [float((predicted[truth == c] == c).mean()) for c in np.unique(truth)]
    return float(np.mean(recalls)) if recalls else float("nan")


def holdout_metrics(
    task: str, predictor: nn.Module, controller: nn.Module, holdout: SplitTensors
) -> dict[str, Any]:
    """Every figure the adaptation report and the transfer study need, on the holdout split."""
    device = torch.device("cpu")
    logits = infer(predictor, holdout.frames, device)
    metric = frame_metric(task, logits, holdout.targets).numpy()
    scores = infer(controller, holdout.frames, device).numpy()
    op = OPERATING_POINT[task]
    amenable = holdout.amenable.astype(np.int64)
    prevalence = non_amenable_fraction(amenable)
    out: dict[str, Any] = {
        "task": task,
        "frames": len(holdout),
        "metric": "accuracy" if task == "classify" else "dice",
        "mean": float(metric.mean()),
        "kappa": cohens_kappa(rejected_mask(scores, op), amenable),
        # Kappa at a fixed 5 % is capped when more frames are non-amenable; at prevalence it is not.
        "kappa_at_prevalence": cohens_kappa(rejected_mask(scores, prevalence), amenable),
        "non_amenable_fraction": prevalence,
        "score_spread": float(np.quantile(scores, 0.95) - np.quantile(scores, 0.05)),
        "operating_point": op,
        "rejection": {f"{r:.2f}": rejection_curve(metric, scores, (r,))[0] for r in REJECTIONS},
    }
    if task == "classify":
        out["balanced_accuracy"] = balanced_accuracy(logits.argmax(1).numpy(), holdout.targets.numpy())
    return out
