"""The rejection decision made again on the graphs as they will be served, for the manifest: the same
functions as `usqa evaluate` (usqa/trainer/amenability/rejection_report.py), fed by onnxruntime instead of
torch, so the manifest promises what the service computes (int8 graphs included)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from usqa.contracts.graphs import CONTROLLER_FILE, PREDICTOR_FILE
from usqa.service.datasets.labels import FrameArrays
from usqa.service.inference.evaluation import frame_accuracy, frame_dice, run_in_batches
from usqa.service.inference.graph_file import GraphPair, open_graphs
from usqa.service.inference.model import ModelOutputs
from usqa.trainer.amenability.rejection_report import (
    CertificationTarget,
    Rejection,
    decide_rejection,
    served_split,
)
from usqa.trainer.amenability.rejector_fit import SplitOutputs


def _split(pair: GraphPair, task: str, arrays: FrameArrays) -> SplitOutputs:
    targets = arrays.labels if task == "classify" or arrays.masks is None else arrays.masks
    if len(arrays.images) == 0:
        empty = np.zeros(0)
        outputs = ModelOutputs(empty, np.zeros((0, 2)), np.zeros((0, 1, 1)))
        return served_split(task, outputs, targets, empty, np.array([]))
    outputs = run_in_batches(pair, arrays.images)
    if task == "classify":
        assert outputs.probabilities is not None
        metric = frame_accuracy(outputs.probabilities, arrays.labels)
    else:
        assert outputs.mask_probability is not None and arrays.masks is not None
        metric = frame_dice(outputs.mask_probability, arrays.masks)
    return served_split(task, outputs, targets, metric, np.asarray(arrays.subjects))


def served_rejection(
    files: dict[str, Path],
    task: str,
    val: FrameArrays,
    holdout: FrameArrays,
    target: CertificationTarget,
    seed: int,
    reward: np.ndarray | None = None,
) -> Rejection:
    """Fit, choose and certify the served rejector on the graph files `files` (by contract file name); `reward`
    marks the `val` frames the controller's reward used (usqa.trainer.data.reward_mask)."""
    pair = open_graphs(files[CONTROLLER_FILE], files[PREDICTOR_FILE], task)
    return decide_rejection(task, _split(pair, task, val), _split(pair, task, holdout), target, seed, reward)
