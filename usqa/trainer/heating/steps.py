"""The step-based engines' shared part: seeded mini-batches, the cosine schedule and `StepEngine`.

An iteration of a `StepEngine` is one optimiser step on one mini-batch (heating, supervised fine-tuning).
`state_dict()` holds everything a resumed run needs to continue exactly as an uninterrupted one: step,
weights, optimisers, schedulers, the batch order and whatever the subclass adds in `extra_state()`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from usqa.trainer.data import BatchSampler
from usqa.trainer.engine.base import Callback, Engine, Logs
from usqa.trainer.heating.data import ClassSplit


def cosine_schedule(total_steps: int, warmup_steps: int = 0) -> Callable[[int], float]:
    """Linear warm-up, then cosine decay to zero over the remaining steps (a LambdaLR factor)."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return factor


class BatchStream:
    """Seeded mini-batches (frames, class ids) of one split, moved to the device."""

    def __init__(self, split: ClassSplit, batch_size: int, seed: int, device: torch.device) -> None:
        self.split, self.device = split, device
        self.sampler = BatchSampler(len(split), batch_size, seed)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        index = self.sampler.next()
        return self.split.frames[index].to(self.device), self.split.labels[index].to(self.device)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.sampler.load_state_dict(state)


class StepEngine(Engine):
    """Runs `train_step` on the next mini-batch until `total_steps`; subclasses define the step."""

    unit = "step"
    progress_fields: ClassVar[dict[str, str]] = {"loss": "{loss:.3f}", "acc": "{accuracy:.2f}"}

    def __init__(
        self,
        stage: str,
        networks: dict[str, nn.Module],
        optimisers: dict[str, torch.optim.Optimizer],
        schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler],
        data: BatchStream,
        total_steps: int,
        callbacks: Sequence[Callback] = (),
    ) -> None:
        super().__init__(stage, total_steps, callbacks)
        self._networks, self.optimisers, self.schedulers = networks, optimisers, schedulers
        self.data = data

    @property
    def networks(self) -> dict[str, nn.Module]:
        return self._networks

    @property
    def step(self) -> int:
        """Optimiser steps done (the engine's iterations)."""
        return self.iteration

    @property
    def total_steps(self) -> int:
        return self.iterations

    def train_step(self, frames: torch.Tensor, labels: torch.Tensor) -> Logs:
        raise NotImplementedError

    def start(self) -> None:
        for network in self.networks.values():
            network.train()

    def run_iteration(self) -> Logs:
        frames, labels = self.data.next()
        logs = self.train_step(frames, labels)
        for scheduler in self.schedulers.values():
            scheduler.step()
        return logs

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        del state

    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "networks": {k: v.state_dict() for k, v in self.networks.items()},
            "optimisers": {k: v.state_dict() for k, v in self.optimisers.items()},
            "schedulers": {k: v.state_dict() for k, v in self.schedulers.items()},
            "data": self.data.state_dict(),
            "extra": self.extra_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.iteration = int(state["step"])
        for key, network in self.networks.items():
            network.load_state_dict(state["networks"][key])
        for key, optimiser in self.optimisers.items():
            optimiser.load_state_dict(state["optimisers"][key])
        for key, scheduler in self.schedulers.items():
            scheduler.load_state_dict(state["schedulers"][key])
        self.data.load_state_dict(state["data"])
        self.load_extra_state(state["extra"])
