"""Heating (Algorithm 1 of seed 000): the classifier and the noise policy trained together on masked frames.

One iteration is one step: policy -> noise mask -> masked frame -> classifier -> eq. 8 -> one backward for
both networks. The state holds the policy's dataset-level alpha/beta buffers with its weights, and the mask
sampler's generator and the loss baseline as extra state, so a resumed run continues exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from usqa.trainer.engine.base import Callback
from usqa.trainer.heating.loss import MovingAverageBaseline, heating_loss
from usqa.trainer.heating.masks import NoiseMaskSampler, apply_mask
from usqa.trainer.heating.policy import NoisePolicy
from usqa.trainer.heating.steps import BatchStream, StepEngine
from usqa.trainer.networks import FrameClassifier


class HeatingEngine(StepEngine):
    """Algorithm 1: policy -> noise mask -> masked frame -> classifier -> eq. 8 -> one backward for both."""

    def __init__(
        self,
        classifier: FrameClassifier,
        policy: NoisePolicy,
        optimiser: torch.optim.Optimizer,
        policy_optimiser: torch.optim.Optimizer,
        schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler],
        data: BatchStream,
        mask_sampler: NoiseMaskSampler,
        total_steps: int,
        loss: str = "paper",
        baseline_momentum: float = 0.9,
        mask_space: str = "pixels",
        pixel_mean: float = 0.5,
        callbacks: Sequence[Callback] = (),
    ) -> None:
        super().__init__(
            "heat",
            {"classifier": classifier, "policy": policy},
            {"classifier": optimiser, "policy": policy_optimiser},
            schedulers,
            data,
            total_steps,
            callbacks,
        )
        self.classifier, self.policy, self.mask_sampler = classifier, policy, mask_sampler
        self.loss, self.mask_space, self.pixel_mean = loss, mask_space, pixel_mean
        self.baseline = MovingAverageBaseline(baseline_momentum)

    def train_step(self, frames: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        action = self.policy(frames)  # eqs. 2, 10-13, 3
        draw = self.mask_sampler(action.alpha, action.beta)  # eqs. 4, 7, upsample, blur
        masked = apply_mask(frames, draw.mask, self.mask_space, self.pixel_mean)  # eq. 5
        logits = self.classifier(masked)
        cross_entropy = F.cross_entropy(logits, labels, reduction="none")
        baseline = None
        if self.loss == "baseline":
            baseline = (
                self.baseline.value
                if self.baseline.value is not None
                else float(cross_entropy.detach().mean())
            )
        loss = heating_loss(draw.log_prob, cross_entropy, baseline)  # eq. 8
        for optimiser in self.optimisers.values():
            optimiser.zero_grad(set_to_none=True)
        loss.backward()
        for optimiser in self.optimisers.values():
            optimiser.step()
        self.baseline.update(cross_entropy)
        alpha_d, beta_d = self.policy.dataset_parameters()
        return {
            "loss": loss.item(),
            "cross_entropy": float(cross_entropy.detach().mean()),
            "accuracy": float((logits.argmax(1) == labels).float().mean()),
            "mask_mean": float(draw.mask.mean()),
            "mask_std": float(draw.mask.std()),
            # medians over cells: a few cells with huge parameters would dominate a mean
            "dataset_alpha": float(alpha_d.median()),
            "dataset_beta": float(beta_d.median()),
            "dataset_concentration": float((alpha_d + beta_d).median()),
        }

    def extra_state(self) -> dict[str, Any]:
        return {"mask_sampler": self.mask_sampler.state_dict(), "baseline": self.baseline.state_dict()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.mask_sampler.load_state_dict(state["mask_sampler"])
        self.baseline.load_state_dict(state["baseline"])
