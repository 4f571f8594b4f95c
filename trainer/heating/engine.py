"""The training engines of heating (Algorithm 1) and of supervised fine-tuning, and their callbacks.

An engine receives its networks, optimisers, schedulers, a batch stream and callbacks; progress, logging and
checkpoints are callbacks, not code inside the loop (MONAI `SupervisedTrainer` style). `state_dict()` holds
everything a resumed run needs to continue exactly as an uninterrupted one: step, weights (with the policy's
dataset-level alpha/beta buffers), optimisers, schedulers and every generator.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from trainer.data import BatchSampler
from trainer.heating.augment import CutMix, RandAugment
from trainer.heating.data import ClassSplit
from trainer.heating.loss import MovingAverageBaseline, heating_loss
from trainer.heating.masks import NoiseMaskSampler, apply_mask
from trainer.heating.policy import NoisePolicy
from trainer.networks import FrameClassifier

MSG_NO_CUDA = "--device {device} was asked for, but torch sees no CUDA device (torch {version})"


class DeviceError(ValueError):
    """A device that is not there: said loudly, never silently replaced by the CPU."""


def resolve_device(name: str) -> torch.device:
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(MSG_NO_CUDA.format(device=name, version=torch.__version__))
    return device


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


class Callback:
    """Hooks of an engine's run; subclasses override what they need."""

    def on_start(self, engine: Engine) -> None:
        del engine

    def on_step(self, engine: Engine, logs: dict[str, float]) -> None:
        del engine, logs

    def on_end(self, engine: Engine) -> None:
        del engine


class Engine:
    """Runs `train_step` until `total_steps`; subclasses define the step and what their state holds."""

    def __init__(
        self,
        networks: dict[str, nn.Module],
        optimisers: dict[str, torch.optim.Optimizer],
        schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler],
        data: BatchStream,
        total_steps: int,
        callbacks: Sequence[Callback] = (),
    ) -> None:
        self.networks, self.optimisers, self.schedulers = networks, optimisers, schedulers
        self.data, self.total_steps, self.callbacks = data, total_steps, list(callbacks)
        self.step = 0
        self.last_logs: dict[str, float] = {}

    def train_step(self, frames: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        raise NotImplementedError

    def run(self) -> None:
        for network in self.networks.values():
            network.train()
        for callback in self.callbacks:
            callback.on_start(self)
        while self.step < self.total_steps:
            frames, labels = self.data.next()
            logs = self.train_step(frames, labels)
            for scheduler in self.schedulers.values():
                scheduler.step()
            self.step += 1
            self.last_logs = logs
            for callback in self.callbacks:
                callback.on_step(self, logs)
        for callback in self.callbacks:
            callback.on_end(self)

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
        self.step = int(state["step"])
        for key, network in self.networks.items():
            network.load_state_dict(state["networks"][key])
        for key, optimiser in self.optimisers.items():
            optimiser.load_state_dict(state["optimisers"][key])
        for key, scheduler in self.schedulers.items():
            scheduler.load_state_dict(state["schedulers"][key])
        self.data.load_state_dict(state["data"])
        self.load_extra_state(state["extra"])


class HeatingEngine(Engine):
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


class SupervisedEngine(Engine):
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
    ) -> None:
        super().__init__(
            {"classifier": classifier}, {"classifier": optimiser}, schedulers, data, total_steps, callbacks
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


class ProgressBar(Callback):
    """A tqdm bar over the steps with the latest loss and accuracy."""

    def __init__(self, description: str, enabled: bool = True) -> None:
        self.description, self.enabled = description, enabled
        self.bar: tqdm[Any] | None = None

    def on_start(self, engine: Engine) -> None:
        self.bar = tqdm(
            total=engine.total_steps, initial=engine.step, desc=self.description, disable=not self.enabled
        )

    def on_step(self, engine: Engine, logs: dict[str, float]) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{logs['loss']:.3f}", acc=f"{logs['accuracy']:.2f}", refresh=False)

    def on_end(self, engine: Engine) -> None:
        if self.bar is not None:
            self.bar.close()


class JsonLinesLog(Callback):
    """Appends `{"step": k, **logs}` to a .jsonl file every `every` steps and at the last step."""

    def __init__(self, path: Path, every: int = 10) -> None:
        self.path, self.every = path, max(1, every)

    def on_start(self, engine: Engine) -> None:
        # a resumed run drops the lines an interrupted one wrote after its last checkpoint
        if self.path.is_file():
            lines = self.path.read_text(encoding="utf-8").splitlines()
            kept = [line for line in lines if line and json.loads(line)["step"] <= engine.step]
            self.path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")

    def on_step(self, engine: Engine, logs: dict[str, float]) -> None:
        if engine.step % self.every == 0 or engine.step == engine.total_steps:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps({"step": engine.step, **logs}) + "\n")


class History(Callback):
    """Keeps every step's logs in memory (for analyses and tests)."""

    def __init__(self) -> None:
        self.logs: list[dict[str, float]] = []

    def on_step(self, engine: Engine, logs: dict[str, float]) -> None:
        self.logs.append({"step": float(engine.step), **logs})


class Checkpointer(Callback):
    """Saves `payload(engine)` to `path` every `every` steps and at the end, atomically (write, then rename)."""

    def __init__(self, path: Path, every: int, payload: Callable[[Engine], dict[str, Any]]) -> None:
        self.path, self.every, self.payload = path, max(1, every), payload

    def save(self, engine: Engine) -> None:
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        torch.save(self.payload(engine), tmp)
        tmp.replace(self.path)

    def on_step(self, engine: Engine, logs: dict[str, float]) -> None:
        if engine.step % self.every == 0 and engine.step < engine.total_steps:
            self.save(engine)

    def on_end(self, engine: Engine) -> None:
        self.save(engine)


def load_checkpoint_of_kind(path: Path, kind: str, message: str) -> dict[str, Any]:
    """A heating/fine-tuning checkpoint, refused with `message` (formatted with path) if it is of another kind."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("kind") != kind:
        raise ValueError(message.format(path=path))
    return state
