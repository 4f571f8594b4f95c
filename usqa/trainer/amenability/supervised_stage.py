"""The supervised stage: the predictor trained on every training frame to convergence, before the controller matters.

`supervised_stage(config, train, val) -> StageResult` is an ordinary supervised training: AdamW with a one-cycle
(or cosine) learning rate over at most `config.supervised.steps` steps, the recipe's augmentation and sampler, a
validation check every `eval_every` steps (accuracy or Dice on the validation split, never the holdout), early
stopping after `patience` checks without improvement and the best check's weights restored (`BestModel`).
`train()` runs it once; Algorithm 1 and the non-selective baseline both continue from its predictor, so the
comparison stays fair. The generalisation benchmark calls it alone as its "supervised reference".

Seeded throughout (initial weights, batches, augmentation): run twice, it gives the same predictor, which is how a
resumed run that crashed inside the stage stays exact (the stage is redone; a finished stage is read back from
the run folder's supervised.pt). Two runs whose configs agree on what the stage reads (`stage_identity`) train the
same stage, so a finished one may be shared (`shared_stage`): the generalisation benchmark trains it once per data
set, task and seed, as its supervised reference, and every method's run continues from that file.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from usqa.contracts.training import TrainConfig
from usqa.trainer.amenability.engine import frame_metric, infer, predictor_loss
from usqa.trainer.amenability.run_folder import METRICS_FILE, SUPERVISED_FILE
from usqa.trainer.augment import UltrasoundAugment
from usqa.trainer.data import SplitTensors, TaskData, train_sampler
from usqa.trainer.engine.base import Callback, Engine, Logs
from usqa.trainer.engine.callbacks import BestModel, History, MetricsLog, ProgressBar, atomic_torch_save
from usqa.trainer.networks import build_predictor, seeded_init

log = logging.getLogger(__name__)

STAGE = "supervised"
# Seed offsets of the stage's generators, apart from Algorithm 1's (+1..+5) and the baseline's (+1000..).
SEED_OFFSET = 2000
# What the stage reads of a config (the predictor's shape and initial weights, its data, batches, augmentation and
# schedule): two configs equal on these train the same predictor. Algorithm 1's settings are not among them.
STAGE_FIELDS = (
    "task",
    "seed",
    "frame",
    "batch_size",
    "predictor_loss",
    "weight_decay",
    "num_classes",
    "backbone",
    "unet",
    "backbone_checkpoint",
    "supervised",
)
STAGE_RECIPE_FIELDS = ("augment", "balanced_sampling", "output_prior")


class StageMismatch(ValueError):
    """A shared stage file trained with other settings than the run asks for."""


@dataclass
class StageResult:
    """The trained predictor (best validation check restored) and what the stage did."""

    predictor: nn.Module
    history: list[dict[str, Any]] = field(default_factory=list)
    best_check: int = 0
    best_metric: float = float("nan")
    steps: int = 0  # optimiser steps taken (fewer than the budget when it stopped early)
    stopped_early: bool = False
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        """What the run folder and the report keep of it (everything but the network)."""
        return {
            "best_check": self.best_check,
            "best_metric": self.best_metric,
            "steps": self.steps,
            "stopped_early": self.stopped_early,
            "seconds": self.seconds,
            "history": self.history,
        }


def validation_index(val: SplitTensors, limit: int, seed: int) -> torch.Tensor:
    """The validation frames scored at each check: all, or a seeded subset of `limit`."""
    if len(val) <= limit:
        return torch.arange(len(val))
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(len(val), generator=generator)[:limit].sort().values


class SupervisedStageEngine(Engine):
    """`eval_every` predictor steps on all training frames per iteration, then one validation check."""

    unit = "check"
    progress_fields: ClassVar[dict[str, str]] = {"loss": "{loss:.3f}", "metric": "{metric:.3f}"}

    def __init__(
        self,
        config: TrainConfig,
        predictor: nn.Module,
        train: SplitTensors,
        val: SplitTensors,
        callbacks: Sequence[Callback] = (),
        device: torch.device | str = "cpu",
    ) -> None:
        stage = config.supervised
        checks = max(1, math.ceil(stage.steps / max(1, stage.eval_every)))
        super().__init__(STAGE, checks, callbacks)
        self.config, self.predictor, self.train, self.device = config, predictor, train, torch.device(device)
        self.eval_every = max(1, stage.eval_every)
        seed = config.seed + SEED_OFFSET
        index = validation_index(val, stage.val_frames, seed)
        self.val_frames, self.val_targets = val.frames[index], val.targets[index]
        self.optimiser = torch.optim.AdamW(
            predictor.parameters(), lr=stage.learning_rate, weight_decay=config.weight_decay
        )
        total = checks * self.eval_every
        self.schedule: torch.optim.lr_scheduler.LRScheduler
        if stage.schedule == "one_cycle":
            self.schedule = torch.optim.lr_scheduler.OneCycleLR(
                self.optimiser, max_lr=stage.learning_rate, total_steps=total, pct_start=0.3
            )
        else:
            self.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimiser, T_max=total)
        self.sampler = train_sampler(train, config, seed=seed + 2)
        self.augment: UltrasoundAugment | None = None
        if config.recipe.augment == "ultrasound":
            self.augment = UltrasoundAugment(seed + 4, segmentation=config.task == "segment")
        self.steps = 0

    @property
    def networks(self) -> dict[str, nn.Module]:
        return {"predictor": self.predictor}

    def step(self) -> float:
        batch = self.sampler.next()
        inputs = self.train.frames[batch].to(self.device)
        truth = self.train.targets[batch].to(self.device)
        if self.augment is not None:
            inputs, augmented = self.augment(inputs, truth)
            truth = truth if augmented is None else augmented
        self.predictor.train()
        loss = predictor_loss(self.predictor(inputs), truth, self.config.predictor_loss)
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        self.optimiser.step()
        self.schedule.step()
        self.steps += 1
        return float(loss.detach())

    def validation_metric(self) -> float:
        logits = infer(self.predictor, self.val_frames, self.device)
        return float(frame_metric(self.config.task, logits, self.val_targets).mean())

    def run_iteration(self) -> Logs:
        losses = [self.step() for _ in range(self.eval_every)]
        return {
            "loss": sum(losses) / len(losses),
            "metric": self.validation_metric(),
            "learning_rate": float(self.optimiser.param_groups[0]["lr"]),
            "steps": self.steps,
        }

    def iteration_logs(self, logs: Logs) -> Logs:
        return {
            "stage": self.stage,
            "checks": self.iterations,
            "elapsed_s": self.elapsed_s,
            "eta_s": self.eta_s,
            **logs,
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "check": self.iteration,
            "steps": self.steps,
            "predictor": self.predictor.state_dict(),
            "optimiser": self.optimiser.state_dict(),
            "schedule": self.schedule.state_dict(),
            "sampler": self.sampler.state_dict(),
            "augment": None if self.augment is None else self.augment.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.iteration, self.steps = int(state["check"]), int(state["steps"])
        self.predictor.load_state_dict(state["predictor"])
        self.optimiser.load_state_dict(state["optimiser"])
        self.schedule.load_state_dict(state["schedule"])
        self.sampler.load_state_dict(state["sampler"])
        if self.augment is not None and state.get("augment") is not None:
            self.augment.load_state_dict(state["augment"])


def supervised_stage(
    config: TrainConfig,
    train: SplitTensors,
    val: SplitTensors,
    *,
    predictor: nn.Module | None = None,
    callbacks: Sequence[Callback] = (),
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> StageResult:
    """Train `predictor` (default: `build_predictor(config)` seeded by `config.seed`) on all of `train` to
    convergence on `val`; returns it with the best validation check's weights, in eval mode, and its history.

    `config.supervised.steps` must be positive; `config.num_classes` must match the data (as `train()` sets it).
    """
    if config.supervised.steps <= 0:
        raise ValueError("the supervised stage needs supervised.steps > 0")
    if predictor is None:
        with seeded_init(config.seed):
            predictor = build_predictor(config)
    predictor = predictor.to(device)
    best = BestModel("metric", patience=config.supervised.patience, keep=("predictor",))
    history = History()
    engine = SupervisedStageEngine(
        config, predictor, train, val, [best, history, ProgressBar(enabled=progress), *callbacks], device
    )
    started = time.perf_counter()
    engine.run()
    return StageResult(
        predictor=predictor.eval(),
        history=history.logs,
        best_check=best.best_iteration,
        best_metric=float("nan") if best.best_value is None else best.best_value,
        steps=engine.steps,
        stopped_early=best.stopped_at is not None,
        seconds=time.perf_counter() - started,
    )


def stage_identity(config: TrainConfig | dict[str, Any]) -> dict[str, Any]:
    """The part of a (resolved) config that decides the stage's predictor."""
    values = config.to_dict() if isinstance(config, TrainConfig) else config
    recipe = values.get("recipe", {})
    return {
        **{key: values.get(key) for key in STAGE_FIELDS},
        "recipe": {key: recipe.get(key) for key in STAGE_RECIPE_FIELDS},
    }


def save_stage(config: TrainConfig, result: StageResult, path: Path) -> dict[str, torch.Tensor]:
    """Write the stage's predictor, its resolved config and what it did to `path` (atomically); return the weights."""
    state = {k: v.cpu() for k, v in result.predictor.state_dict().items()}
    atomic_torch_save({"config": config.to_dict(), "predictor": state, "stage": result.summary()}, path)
    return state


def shared_stage(config: TrainConfig, source: Path, run_dir: Path) -> dict[str, torch.Tensor]:
    """The predictor of a stage another run trained (`source`, a supervised.pt), copied into this run's folder.

    Raises `StageMismatch` when `source` was trained with settings the stage reads that differ from `config`'s,
    naming them: a shared stage must be the one this run would have trained itself.
    """
    saved = torch.load(source, map_location="cpu", weights_only=False)
    theirs, ours = stage_identity(saved["config"]), stage_identity(config)
    if theirs != ours:
        differ = sorted(key for key in ours if ours[key] != theirs.get(key))
        raise StageMismatch(
            f"{source}: a supervised stage trained with other {', '.join(differ)} than this run's"
        )
    atomic_torch_save(
        {**saved, "config": config.to_dict(), "shared_from": str(source)}, run_dir / SUPERVISED_FILE
    )
    state: dict[str, torch.Tensor] = saved["predictor"]
    return state


def stage_in_run_folder(
    config: TrainConfig,
    data: TaskData,
    run_dir: Path,
    predictor: nn.Module,
    callbacks: Sequence[Callback],
    resume: bool,
    progress: bool,
    device: torch.device,
    seconds: dict[str, float],
    shared: Path | None = None,
) -> dict[str, torch.Tensor]:
    """`train()`'s stage: the predictor's weights read back from supervised.pt on a resume, taken from a `shared`
    stage file (`shared_stage`), else trained from `predictor` (seeded, with the heated backbone when configured),
    logged to metrics.jsonl and saved."""
    path = run_dir / SUPERVISED_FILE
    if resume and path.is_file():
        state: dict[str, torch.Tensor] = torch.load(path, map_location="cpu", weights_only=False)["predictor"]
        return state
    if shared is not None:
        return shared_stage(config, shared, run_dir)
    result = supervised_stage(
        config,
        data.train,
        data.val,
        predictor=predictor,
        callbacks=[MetricsLog(run_dir / METRICS_FILE), *callbacks],
        device=device,
        progress=progress,
    )
    seconds[STAGE] = result.seconds
    log.info(
        "supervised stage: best validation metric %.4f at check %d, %d steps%s",
        result.best_metric,
        result.best_check,
        result.steps,
        " (stopped early)" if result.stopped_early else "",
    )
    return save_stage(config, result, path)
