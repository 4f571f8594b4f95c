"""Task metrics, the three rewards of section 2.3, the reward baseline and the constraint of eq. 3.

Rewards are written with a per-frame metric m_j (accuracy or Dice, higher is better) instead of the paper's
per-frame loss l_j; maximising mean m is minimising mean l for l = 1 - m.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import torch

DICE_EPS = 1e-6


def frame_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """1.0 where the arg-max class is the label, else 0.0; shape [N]."""
    return (logits.argmax(dim=1) == labels).float()


def frame_dice(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Binary Dice of the arg-max foreground per frame, shape [N]; 1.0 when both masks are empty."""
    predicted = (logits.argmax(dim=1) == 1).flatten(1).float()
    truth = masks.flatten(1).float()
    overlap = (predicted * truth).sum(1)
    total = predicted.sum(1) + truth.sum(1)
    return (2 * overlap + DICE_EPS) / (total + DICE_EPS)


def frame_confidence(logits: torch.Tensor) -> torch.Tensor:
    """The predictor's own confidence per frame: max class probability (mean over pixels for segmentation)."""
    confidence = torch.softmax(logits, dim=1).amax(dim=1)
    return confidence.flatten(1).mean(1) if confidence.dim() > 1 else confidence


def reward_average(metric: torch.Tensor) -> torch.Tensor:
    """R_avg: the mean metric over a fixed clean validation set (section 2.3, definition 1)."""
    return metric.float().mean()


def reward_weighted(metric: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """R_w: the metric weighted by controller scores (section 2.3, definition 2), as a weighted mean.

    The paper's (1/M) sum l_j h_j is won by h = 0; normalising by sum h_j makes the reward invariant to a
    uniform scaling of h, so neither "reject everything" nor "keep everything" wins by itself. Weights are
    clamped at 0 so they stay non-negative whatever the caller passes.
    """
    weights = scores.float().clamp(min=0)
    total = weights.sum()
    if total <= 0:
        return metric.float().mean()
    return (weights * metric.float()).sum() / total


def reward_selective(metric: torch.Tensor, scores: torch.Tensor, rejection: float) -> torch.Tensor:
    """R_sel: the mean metric over the M' = floor((1 - s_rej) M) highest-scored frames (definition 3)."""
    if not 0 <= rejection < 1:
        raise ValueError(f"rejection ratio must be in [0, 1), got {rejection}")
    kept = max(1, int((1 - rejection) * metric.numel()))
    # Stable sort so that ties keep frame order and the reward is reproducible.
    order = torch.sort(scores.float(), descending=True, stable=True).indices[:kept]
    return metric.float()[order].mean()


def compute_reward(
    kind: str, metric: torch.Tensor, scores: torch.Tensor | None, rejection: float = 0.0
) -> float:
    """The unclipped reward R~_t of `kind` ("avg", "weighted" or "selective") as a float."""
    if kind == "avg":
        return float(reward_average(metric))
    if scores is None:
        raise ValueError(f"the {kind!r} reward needs controller scores on the validation frames")
    if kind == "weighted":
        return float(reward_weighted(metric, scores))
    if kind == "selective":
        return float(reward_selective(metric, scores, rejection))
    raise ValueError(f"unknown reward {kind!r}")


class RewardBaseline:
    """The moving-average baseline Rbar_t, and the clipped reward R_t = R~_t - Rbar_t (section 2.3).

    "ema" (the paper): Rbar_t = alpha_R * Rbar_{t-1} + (1 - alpha_R) * R~_t, updated *before* it is subtracted,
    as printed; Rbar_0 is the first reward (so the first clipped reward is 0, not alpha_R * R~_1).
    "window" (the authors' public code): Rbar_t = mean of the last `window` rewards, R~_t included.
    """

    def __init__(self, kind: str = "ema", alpha: float = 0.9, window: int = 10) -> None:
        if kind not in ("ema", "window"):
            raise ValueError(f"unknown reward baseline {kind!r}")
        self.kind, self.alpha, self.window = kind, alpha, window
        self.value: float | None = None
        self.history: deque[float] = deque(maxlen=window)

    def update(self, reward: float) -> float:
        """Fold R~_t into Rbar_t and return the clipped reward R~_t - Rbar_t."""
        if self.kind == "ema":
            previous = reward if self.value is None else self.value
            self.value = self.alpha * previous + (1 - self.alpha) * reward
        else:
            self.history.append(reward)
            self.value = sum(self.history) / len(self.history)
        return reward - self.value

    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "value": self.value, "history": list(self.history)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.value = state["value"]
        self.history = deque(state["history"], maxlen=self.window)


def selection_probabilities(scores: torch.Tensor, mode: str, budget: float) -> torch.Tensor:
    """The Bernoulli selection probabilities of a mini-batch from its controller scores.

    "penalty": the scores themselves (Algorithm 1 as printed; eq. 3 is left to `constraint_penalty`).
    "budget": p_i = min(1, c * h_i / mean_j h_j): every mini-batch keeps a fraction c in expectation, so the
    constraint holds by construction (also for h -> 0) and "keep everything" is not on offer; only the
    controller's ranking of frames decides which of them train the predictor.
    """
    if mode == "penalty":
        return scores
    if mode != "budget":
        raise ValueError(f"unknown constraint mode {mode!r}")
    return (budget * scores / scores.mean().clamp_min(1e-6)).clamp(0.0, 1.0)


def constraint_penalty(scores: torch.Tensor, min_mean_score: float, weight: float) -> torch.Tensor:
    """lambda * max(0, c - mean h)^2: a quadratic penalty for violating E[h] >= c (eq. 3)."""
    return weight * torch.clamp(min_mean_score - scores.mean(), min=0) ** 2
