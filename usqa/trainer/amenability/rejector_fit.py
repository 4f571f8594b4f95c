"""Rejectors side by side on one predictor: their constants fitted on the validation split, the served one
chosen by validation AURC (or forced), each scored the way the runtime scores it
(usqa/service/inference/rejectors.py).

- Temperature: the T of softmax(log p / T) with the least validation negative log-likelihood. A grid of 121
  values, log-spaced from 0.05 to 20, is searched (deterministic). Segmentation fits its pixels, a seeded
  sample of at most `PIXEL_SAMPLE`.
- Fused: a logistic regression of "the task model is right" on the controller score and the temperature-scaled
  softmax response's logit. It is fitted on the validation split, and its validation AURC comes from two
  subject folds (fit on one, scored on the other), so the choice does not favour it for seeing its own frames.
- Served: the lowest validation AURC among the temperature-scaled softmax and the rejectors that beat it
  beyond the validation split's sampling error (a one-sided subject bootstrap of the AURC difference at 95 %
  overall, Bonferroni-corrected for the challengers tried: 98.75 % each for four); ties go to the simpler
  rejector (PREFERENCE). Uncorrected (95 % each, 200 resamples), a controller or fused score chosen this way
  lost to the softmax on the holdout in one or two of three seeds on three of the benchmark's nine rows
  (docs/results.md, 6 Dec 2026): with three challengers, one passes a 95 % test by chance far more often
  than one time in twenty.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

from usqa.service.inference.rejectors import (
    REJECTORS,
    RejectorName,
    fused_features,
    rejector_scores,
    scaled_foreground,
    scaled_probabilities,
    softmax_response,
)
from usqa.service.inference.selective import aurc

TEMPERATURES = np.geomspace(0.05, 20.0, 121)
PIXEL_SAMPLE = 200_000
# Preference among equal validation AURCs: the plain calibrated softmax first, the learned scores after.
PREFERENCE: tuple[RejectorName, ...] = ("softmax", "expected_metric", "doctor", "controller", "fused")
# Enough resamples that the corrected tail (under 2 %) rests on some 17 of them, not 3.
MARGIN_RESAMPLES = 1000
FAMILY_LEVEL = 0.05
# The fewest validation frames outside the controller's reward set, over at least two subjects, that the
# rejectors are fitted and chosen on (unseen_by_controller); fewer, and all validation frames are used.
MIN_UNSEEN_FRAMES = 40


def unseen_by_controller(val: SplitOutputs, reward: np.ndarray | None) -> tuple[SplitOutputs, str]:
    """The validation frames the rejectors are fitted and chosen on, and a clause saying which.

    The paper's controller learns from its reward frames, which are validation frames: on them its AURC is
    in-sample, and a controller that won the choice there lost to the softmax on the holdout
    (`thyroid_held_out` segment, one seed of three, docs/results.md, 6 Dec 2026). So the choice judges
    every rejector on the validation frames outside the reward set (`reward`, a mask over `val`) when there
    are enough of them; otherwise on all of them, and the clause says so.
    """
    if reward is None or not reward.any():
        return val, f"on all {len(val)} validation frames"
    unseen = val.subset(~reward)
    if len(unseen) >= MIN_UNSEEN_FRAMES and np.unique(unseen.subjects).size >= 2:
        return unseen, f"on the {len(unseen)} validation frames outside the controller's reward set"
    return val, (
        f"on all {len(val)} validation frames (only {len(unseen)} outside the controller's reward set, "
        f"fewer than {MIN_UNSEEN_FRAMES} or one subject: the controller's figure is in-sample)"
    )


@dataclass(frozen=True)
class SplitOutputs:
    """What the served graphs output on one split, with what the task asks of it."""

    controller: np.ndarray  # [N] the controller's score
    outputs: np.ndarray  # class probabilities [N, C] or foreground probabilities [N, H, W]
    targets: np.ndarray  # labels [N] or masks [N, H, W]
    risks: np.ndarray  # [N] the selective risk of each frame (1 - accuracy, 1 - Dice)
    failures: np.ndarray  # [N] bool, the failure event
    subjects: np.ndarray  # [N]

    def __len__(self) -> int:
        return len(self.risks)

    def subset(self, keep: np.ndarray) -> SplitOutputs:
        return SplitOutputs(
            self.controller[keep],
            self.outputs[keep],
            self.targets[keep],
            self.risks[keep],
            self.failures[keep],
            self.subjects[keep],
        )


@dataclass(frozen=True)
class RejectorFit:
    temperature: float
    weights: tuple[float, float]
    bias: float

    def scores(self, name: RejectorName, task: str, split: SplitOutputs) -> np.ndarray:
        return rejector_scores(
            name,
            task,
            split.controller,
            split.outputs,
            temperature=self.temperature,
            weights=self.weights,
            bias=self.bias,
        )

    def as_dict(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "weights": list(self.weights), "bias": self.bias}


def _nll(task: str, outputs: np.ndarray, targets: np.ndarray, temperature: float) -> float:
    if task == "classify":
        p = scaled_probabilities(outputs, temperature)[np.arange(len(targets)), targets]
    else:
        foreground = scaled_foreground(outputs, temperature)
        p = np.where(targets > 0, foreground, 1.0 - foreground)
    return float(-np.log(np.clip(p, 1e-12, 1.0)).mean())


def fit_temperature(task: str, outputs: np.ndarray, targets: np.ndarray, seed: int = 0) -> float:
    """The grid temperature of least validation NLL (module docstring)."""
    if task != "classify":
        flat_outputs, flat_targets = outputs.reshape(-1), targets.reshape(-1)
        if flat_outputs.size > PIXEL_SAMPLE:
            pick = np.random.default_rng(seed).choice(flat_outputs.size, PIXEL_SAMPLE, replace=False)
            flat_outputs, flat_targets = flat_outputs[pick], flat_targets[pick]
        outputs, targets = flat_outputs[None], flat_targets[None]
    losses = [_nll(task, outputs, targets, float(t)) for t in TEMPERATURES]
    return float(TEMPERATURES[int(np.argmin(losses))])


def _logistic(features: np.ndarray, right: np.ndarray) -> tuple[tuple[float, float], float]:
    if np.unique(right).size < 2:  # every frame right (or wrong): nothing to learn, a constant score
        return (0.0, 0.0), 0.0
    model = LogisticRegression(C=1.0).fit(features, right)
    w = model.coef_[0]
    return (float(w[0]), float(w[1])), float(model.intercept_[0])


def fit_rejectors(task: str, val: SplitOutputs, seed: int = 0) -> RejectorFit:
    temperature = fit_temperature(task, val.outputs, val.targets, seed)
    softmax = softmax_response(val.outputs, task, temperature)
    weights, bias = _logistic(fused_features(val.controller, softmax), ~val.failures)
    return RejectorFit(temperature, weights, bias)


def _cross_fitted_fused(task: str, fit: RejectorFit, val: SplitOutputs, seed: int) -> np.ndarray:
    """Fused scores of the validation frames, each from a model fitted on the other half of the subjects."""
    subjects = np.unique(val.subjects)
    if subjects.size < 2:
        return fit.scores("fused", task, val)
    fold = np.isin(val.subjects, np.random.default_rng(seed).permutation(subjects)[: subjects.size // 2])
    softmax = softmax_response(val.outputs, task, fit.temperature)
    features = fused_features(val.controller, softmax)
    scores = np.empty(len(features))
    for held in (fold, ~fold):
        weights, bias = _logistic(features[~held], ~val.failures[~held])
        scores[held] = 1.0 / (1.0 + np.exp(-(features[held] @ np.asarray(weights) + bias)))
    return scores


def validation_scores(task: str, fit: RejectorFit, val: SplitOutputs, seed: int = 0) -> dict[str, np.ndarray]:
    """Each rejector's scores of the validation frames (the fused one cross-fitted)."""
    return {
        name: _cross_fitted_fused(task, fit, val, seed) if name == "fused" else fit.scores(name, task, val)
        for name in REJECTORS
    }


def validation_aurc(task: str, fit: RejectorFit, val: SplitOutputs, seed: int = 0) -> dict[str, float]:
    return {name: aurc(scores, val.risks) for name, scores in validation_scores(task, fit, val, seed).items()}


def margins_over_softmax(
    scores: dict[str, np.ndarray], val: SplitOutputs, seed: int = 0, resamples: int = MARGIN_RESAMPLES
) -> dict[str, float]:
    """Per rejector, the upper end of a one-sided subject-bootstrap bound on AURC(it) - AURC(softmax) at the
    Bonferroni-corrected level (FAMILY_LEVEL over the challengers): below 0, it beats the softmax beyond the
    validation split's sampling error."""
    subjects, index = np.unique(val.subjects, return_inverse=True)
    frames_of = [np.flatnonzero(index == k) for k in range(subjects.size)]
    generator = np.random.default_rng(seed)
    differences: dict[str, list[float]] = {name: [] for name in scores if name != "softmax"}
    for _ in range(resamples):
        drawn = np.concatenate([frames_of[k] for k in generator.integers(0, subjects.size, subjects.size)])
        base = aurc(scores["softmax"][drawn], val.risks[drawn])
        for name in differences:
            differences[name].append(aurc(scores[name][drawn], val.risks[drawn]) - base)
    level = 100.0 * (1.0 - FAMILY_LEVEL / max(1, len(differences)))
    return {name: float(np.percentile(values, level)) for name, values in differences.items()}


def choose_served(
    validation: dict[str, float],
    forced: RejectorName | None = None,
    margins: dict[str, float] | None = None,
) -> tuple[RejectorName, str]:
    """The served rejector and why, in a sentence. With `margins` (margins_over_softmax), a rejector other
    than the softmax serves only if it beats the softmax beyond sampling error: the softmax response is the
    baseline the field finds hard to beat, and a lower validation AURC by chance would not hold on new data."""
    listed = ", ".join(f"{name} {validation[name]:.4f}" for name in PREFERENCE)
    if forced is not None:
        return forced, f"forced with --rejector {forced} (validation AURC: {listed})"
    candidates = [
        name for name in PREFERENCE if margins is None or name == "softmax" or margins.get(name, 1.0) < 0
    ]
    best = min(candidates, key=lambda name: (round(validation[name], 12), PREFERENCE.index(name)))
    if margins is None:
        return best, f"lowest validation AURC (lower is better): {listed}"
    beyond = ", ".join(name for name in candidates if name != "softmax") or "none"
    return best, (
        f"lowest validation AURC among the softmax and the rejectors that beat it beyond sampling error "
        f"(subject bootstrap, 95 % over the {len(margins)} challengers; beyond: {beyond}); validation AURC, "
        f"lower is better: {listed}"
    )
