"""Task metrics of served graphs on labelled frames: the one evaluation the export and promotion gates share.

A model is scored exactly as the service serves it: prepared uint8 frames through its controller and predictor
ONNX graphs (`LoadedModel.run`, or `graph_file.open_graphs` for graphs not yet in the registry), in batches. Per
frame the task metric is the accuracy of the most probable class (classify) or the Dice of the mask probability
thresholded at 0.5 (segment; 1.0 when the prediction and the truth are both empty). The selective metric is
the mean of that metric over the frames a controller keeps, at a score threshold (what the service does) or a
rejection ratio (the paper's curves). Numpy and onnxruntime only: the runtime image can gate models too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from usqa.service.inference.model import ModelOutputs, concat_outputs

METRIC_NAME = {"classify": "accuracy", "segment": "dice"}
MASK_THRESHOLD = 0.5
EVAL_BATCH = 64
# The fixed tie-break order of `rejected_mask`: equal scores are rejected in the same order on every run.
TIE_SEED = 12345


class ServedGraphs(Protocol):
    """What an evaluation runs: a task and the graph contract's `run` (a `LoadedModel` is one)."""

    @property
    def task(self) -> str: ...

    def run(self, frames: np.ndarray) -> ModelOutputs: ...


# -- per-frame task metrics ----------------------------------------------------------------------------------


def _accuracy(predicted: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return (predicted == labels).astype(np.float64)


def _dice(predicted: np.ndarray, masks: np.ndarray) -> np.ndarray:
    overlap = (predicted & masks).sum(axis=(1, 2))
    total = predicted.sum(axis=(1, 2)) + masks.sum(axis=(1, 2))
    return np.where(total > 0, 2 * overlap / np.maximum(total, 1), 1.0)


def frame_accuracy(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """1.0 where the most probable class of [N, C] probabilities is the label, else 0.0; float64 [N]."""
    return _accuracy(probabilities.argmax(axis=1), labels)


def frame_dice(mask_probability: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Dice per frame (float64 [N]) of mask probabilities [N, S, S] at 0.5 vs bool masks; 1.0 if both empty."""
    return _dice(mask_probability >= MASK_THRESHOLD, masks)


# -- selective metric ----------------------------------------------------------------------------------------


def rejected_mask(scores: np.ndarray, ratio: float) -> np.ndarray:
    """True for the floor(ratio * N) lowest-scored frames.

    Ties are broken in a fixed random order, not by position: a controller that gives many frames the same
    score must not get the frames that happen to come first (one subject's sweep) rejected together.
    """
    n_rejected = int(np.floor(ratio * len(scores) + 1e-9))
    rejected = np.zeros(len(scores), bool)
    tie_break = np.random.default_rng(TIE_SEED).random(len(scores))
    rejected[np.lexsort((tie_break, scores))[:n_rejected]] = True
    return rejected


@dataclass(frozen=True)
class SelectiveMetric:
    """The mean task metric on the frames a controller keeps, and the fraction it keeps."""

    value: float
    kept: float


def selective_metric(
    metric: np.ndarray,
    scores: np.ndarray,
    *,
    threshold: float | None = None,
    rejection_ratio: float | None = None,
) -> SelectiveMetric:
    """Mean `metric` over the frames a controller keeps; give exactly one rule.

    `threshold`: frames scoring at or above it are kept (what the service does). `rejection_ratio`: the
    lowest-scored fraction is rejected (`rejected_mask`, the paper's curves). Keeping no frame scores 0.0:
    a controller that rejects everything is useless, not undefined.
    """
    if (threshold is None) == (rejection_ratio is None):
        raise ValueError("give either a threshold or a rejection ratio")
    if threshold is not None:
        kept = scores >= threshold
    else:
        assert rejection_ratio is not None
        kept = ~rejected_mask(scores, rejection_ratio)
    value = float(metric[kept].mean()) if kept.any() else 0.0
    return SelectiveMetric(value=value, kept=float(kept.mean()) if len(kept) else 0.0)


# -- evaluation of served graphs -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Evaluation:
    """Per-frame results of served graphs on labelled frames."""

    task: str
    metric: np.ndarray  # float64 [N]: accuracy (0 or 1) or Dice per frame
    scores: np.ndarray  # float32 [N]: the controller's score per frame
    predictions: np.ndarray  # int64 [N] class (classify) or bool [N, S, S] mask (segment)

    def __len__(self) -> int:
        return len(self.metric)

    @property
    def metric_name(self) -> str:
        return METRIC_NAME[self.task]

    @property
    def mean(self) -> float:
        """The task metric on every frame (nothing rejected)."""
        return float(self.metric.mean())

    def selective(
        self, *, threshold: float | None = None, rejection_ratio: float | None = None
    ) -> SelectiveMetric:
        """`selective_metric` of these frames by their controller scores."""
        return selective_metric(
            self.metric, self.scores, threshold=threshold, rejection_ratio=rejection_ratio
        )


def run_in_batches(graphs: ServedGraphs, images: np.ndarray, batch: int = EVAL_BATCH) -> ModelOutputs:
    """Both graphs' outputs for prepared uint8 frames [N, S, S], `batch` frames per run."""
    if len(images) == 0:
        raise ValueError("no frames to run")
    return concat_outputs(
        [graphs.run(np.ascontiguousarray(images[i : i + batch])) for i in range(0, len(images), batch)]
    )


def evaluate(
    graphs: ServedGraphs,
    images: np.ndarray,
    labels: np.ndarray | None = None,
    masks: np.ndarray | None = None,
    *,
    batch: int = EVAL_BATCH,
) -> Evaluation:
    """Score prepared frames [N, S, S] through served graphs: per-frame task metric, scores and predictions.

    A classifier needs `labels` (int [N]), a segmenter `masks` (bool [N, S, S], prepared like the frames).
    """
    task = graphs.task
    if task not in METRIC_NAME:
        raise ValueError(f"unknown task {task!r}")
    if task == "classify" and labels is None:
        raise ValueError("a classifier is evaluated against labels")
    if task == "segment" and masks is None:
        raise ValueError("a segmenter is evaluated against masks")
    outputs = run_in_batches(graphs, images, batch)
    if task == "classify":
        assert outputs.probabilities is not None and labels is not None
        predictions = outputs.probabilities.argmax(axis=1)
        metric = _accuracy(predictions, labels)
    else:
        assert outputs.mask_probability is not None and masks is not None
        predictions = outputs.mask_probability >= MASK_THRESHOLD
        metric = _dice(predictions, masks)
    return Evaluation(task=task, metric=metric, scores=outputs.scores, predictions=predictions)
