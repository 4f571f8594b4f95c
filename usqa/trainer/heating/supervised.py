"""Supervised training on clean frames: fine-tuning a heated backbone, or the normal model from scratch.

One iteration is one cross-entropy step, optionally on CutMix- or RandAugment-ed frames (Table 2); the
augmentation's generator is extra state, so a resumed run continues exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from usqa.trainer.engine.base import Callback
from usqa.trainer.heating.augment import CutMix, RandAugment
from usqa.trainer.heating.steps import BatchStream, StepEngine
from usqa.trainer.networks import FrameClassifier


class SupervisedEngine(StepEngine):
    """Cross-entropy on clean frames (fine-tuning, the normal model), optionally with CutMix or RandAugment."""

    def __init__(
        self,
        classifier: FrameClassifier,
        optimiser: torch.optim.Optimizer,
        schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler],
        data: BatchStream,
        total_steps: int,
        augment: CutMix | RandAugment | None = None,
        callbacks: Sequence[Callback] = (),
        stage: str = "finetune",
    ) -> None:
        super().__init__(
            stage,
            {"classifier": classifier},
            {"classifier": optimiser},
            schedulers,
            data,
            total_steps,
            callbacks,
        )
        self.classifier, self.augment = classifier, augment

    def train_step(self, frames: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        if isinstance(self.augment, CutMix):
            mixed = self.augment(frames, labels)
            logits = self.classifier(mixed.frames)
            loss = mixed.lam * F.cross_entropy(logits, mixed.labels_a) + (1 - mixed.lam) * F.cross_entropy(
                logits, mixed.labels_b
            )
        else:
            inputs = self.augment(frames) if isinstance(self.augment, RandAugment) else frames
            logits = self.classifier(inputs)
            loss = F.cross_entropy(logits, labels)
        optimiser = self.optimisers["classifier"]
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        return {"loss": loss.item(), "accuracy": float((logits.argmax(1) == labels).float().mean())}

    def extra_state(self) -> dict[str, Any]:
        return {"augment": None if self.augment is None else self.augment.state_dict()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if self.augment is not None and state.get("augment") is not None:
            self.augment.load_state_dict(state["augment"])
