"""The heating objective (eq. 8) and its variance-reduced variant with a moving-average baseline.

Eq. 8: L = mean_i( log(sum_cells exp(log P_i)) * CE_i ), with log P_i the per-cell log-probabilities of frame
i's noise matrix (eq. 7) and CE_i its cross-entropy on the masked frame. One backward pass trains both
networks (Algorithm 1): the classifier through CE_i, weighted by the log-sum-exp; the policy through the
log-sum-exp, weighted by CE_i (a REINFORCE estimator with reward -CE_i).

The log-sum-exp over cells is not the log-probability of the whole matrix (that would be the sum), so its
score has no zero mean: with CE_i > 0 the policy is always pushed to lower the density at its own samples,
i.e. towards flatter, more dispersed masks, harder on frames with larger loss. The baseline variant uses
CE_i - b (b a moving average of the batch-mean CE) as the policy's reward: lower variance, and it also removes
that always-on push, so the policy learns which masks hurt more than average instead. The classifier's
gradient is identical in both.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def mask_log_likelihood(log_prob: torch.Tensor) -> torch.Tensor:
    """log(sum_cells exp(log P)) per frame, [N, G*G] -> [N] (the policy term of eq. 8)."""
    return torch.logsumexp(log_prob, dim=1)


def heating_loss(
    log_prob: torch.Tensor, cross_entropy: torch.Tensor, baseline: float | None = None
) -> torch.Tensor:
    """Eq. 8 (baseline None), or eq. 8 with the policy's reward CE_i replaced by CE_i - baseline."""
    likelihood = mask_log_likelihood(log_prob)
    if baseline is None:
        return torch.mean(likelihood * cross_entropy)  # eq. 8
    classifier_term = likelihood.detach() * cross_entropy
    policy_term = likelihood * (cross_entropy.detach() - baseline)
    return torch.mean(classifier_term + policy_term)


@dataclass
class MovingAverageBaseline:
    """b <- m b + (1 - m) mean(CE), started at the first batch's mean; `value` is read before `update`."""

    momentum: float = 0.9
    value: float | None = None

    def update(self, cross_entropy: torch.Tensor) -> None:
        mean = float(cross_entropy.detach().mean())
        self.value = mean if self.value is None else self.momentum * self.value + (1 - self.momentum) * mean

    def state_dict(self) -> dict[str, float | None]:
        return {"momentum": self.momentum, "value": self.value}

    def load_state_dict(self, state: dict[str, float | None]) -> None:
        momentum = state["momentum"]
        self.momentum = self.momentum if momentum is None else float(momentum)
        self.value = state["value"]
