"""Rejectors: a frame's score that says how far the task model's answer on it can be trusted (higher = keep).

Each is a formula over what the two graphs already output (the controller's `score`, the predictor's class or
mask probabilities), with constants fitted by the trainer on the validation split and carried in the
manifest's `rejector` section, so the runtime and the trainer compute the same number from the same arrays:

- `controller`: the paper's learned score (seed 004), as the controller graph outputs it.
- `softmax`: the softmax response after temperature scaling (Guo et al. 2017): the top class probability of
  softmax(log p / T); for segmentation each pixel's max(p_T, 1 - p_T) with p_T = sigmoid(logit(p) / T),
  averaged over the frame. With T = 1 it is the plain softmax response.
- `doctor`: DOCTOR's Gini-based score (Granese et al., NeurIPS 2021), sum of the squared temperature-scaled
  probabilities (1 - DOCTOR's g); per pixel p_T^2 + (1 - p_T)^2, averaged, for segmentation.
- `fused`: a logistic model over the controller score and the softmax response's logit, fitted on the
  validation split; the probability it outputs is the score.
- `expected_metric`: the task metric the answer would get if the temperature-scaled probabilities were the truth's
  distribution. Classification: the expected accuracy of the top class, its probability (the softmax response).
  Segmentation: the expected Dice of the thresholded mask M = [p_T >= 0.5], as the soft Dice of M against p_T,
  2 sum(p_T M) / (sum(p_T) + sum(M)); for an empty M, the probability that the frame is empty, prod(1 - p_T)
  (the evaluation's Dice of an empty answer is 1 on an empty frame, 0 otherwise). The pixel-averaged
  softmax response is dominated by background pixels, which every answer gets right: on the generalisation
  benchmark of 6 Dec 2026 its holdout AURC was no better than random rejection for converged U-Nets, while the
  risk is 1 - Dice (docs/rejection.md).

numpy only (the runtime's rule); the trainer calls these on its own probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np

from usqa.contracts.graphs import REJECTORS, RejectorName

# Keeps log(p) and logit(p) finite for probabilities that underflowed to 0 or rounded to 1 in float32.
EPSILON: Final = 1e-7


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPSILON, 1.0 - EPSILON)
    return np.log(p) - np.log1p(-p)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def scaled_probabilities(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Classification: softmax(log p / T) over the classes of [N, C] probabilities."""
    logits = np.log(np.clip(probabilities.astype(np.float64), EPSILON, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


def scaled_foreground(mask_probability: np.ndarray, temperature: float) -> np.ndarray:
    """Segmentation: sigmoid(logit(p) / T) per pixel of [N, H, W] foreground probabilities."""
    return _sigmoid(_logit(mask_probability.astype(np.float64)) / temperature)


def softmax_response(outputs: np.ndarray, task: str, temperature: float = 1.0) -> np.ndarray:
    """[N] in [0, 1]: the temperature-scaled softmax response (classify: [N, C]; segment: [N, H, W])."""
    if task == "classify":
        return scaled_probabilities(outputs, temperature).max(axis=1)
    p = scaled_foreground(outputs, temperature)
    return np.maximum(p, 1.0 - p).reshape(p.shape[0], -1).mean(axis=1)


def doctor_score(outputs: np.ndarray, task: str, temperature: float = 1.0) -> np.ndarray:
    """[N] in [1/C, 1]: the sum of squared temperature-scaled probabilities (per pixel, averaged)."""
    if task == "classify":
        return np.square(scaled_probabilities(outputs, temperature)).sum(axis=1)
    p = scaled_foreground(outputs, temperature)
    return (np.square(p) + np.square(1.0 - p)).reshape(p.shape[0], -1).mean(axis=1)


def expected_metric(outputs: np.ndarray, task: str, temperature: float = 1.0) -> np.ndarray:
    """[N] in [0, 1]: the expected accuracy (classify) or expected Dice (segment) under the scaled probabilities."""
    if task == "classify":
        return softmax_response(outputs, task, temperature)
    p = scaled_foreground(outputs, temperature).reshape(outputs.shape[0], -1)
    mask = (p >= 0.5).astype(np.float64)
    overlap, total = (p * mask).sum(axis=1), p.sum(axis=1) + mask.sum(axis=1)
    # An empty answer scores 1 exactly when the frame is empty: probability prod(1 - p), in logs.
    empty = np.exp(np.log1p(-np.minimum(p, 1.0 - EPSILON)).sum(axis=1))
    return np.where(mask.sum(axis=1) > 0, 2.0 * overlap / np.maximum(total, EPSILON), empty)


def fused_features(controller: np.ndarray, softmax: np.ndarray) -> np.ndarray:
    """[N, 2]: the fused model's inputs, the controller score and the softmax response's logit."""
    return np.stack([controller.astype(np.float64), _logit(softmax.astype(np.float64))], axis=1)


def fused_score(
    controller: np.ndarray, softmax: np.ndarray, weights: Sequence[float], bias: float
) -> np.ndarray:
    return _sigmoid(fused_features(controller, softmax) @ np.asarray(weights, np.float64) + bias)


def rejector_scores(
    name: RejectorName,
    task: str,
    controller: np.ndarray,
    outputs: np.ndarray,
    *,
    temperature: float = 1.0,
    weights: Sequence[float] = (),
    bias: float = 0.0,
) -> np.ndarray:
    """[N] float64: rejector `name`'s score of each frame from the graphs' outputs (`outputs`: the
    predictor's class probabilities [N, C] or foreground probabilities [N, H, W])."""
    if name == "controller":
        return controller.astype(np.float64)
    if name == "softmax":
        return softmax_response(outputs, task, temperature)
    if name == "doctor":
        return doctor_score(outputs, task, temperature)
    if name == "expected_metric":
        return expected_metric(outputs, task, temperature)
    if name == "fused":
        if len(weights) != 2:
            raise ValueError(f"the fused rejector needs 2 weights, got {len(weights)}")
        return fused_score(controller, softmax_response(outputs, task, temperature), weights, bias)
    raise ValueError(f"unknown rejector {name!r}: one of {', '.join(REJECTORS)}")
