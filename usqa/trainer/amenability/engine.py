"""Algorithm 1: episodes of T predictor mini-batches selected by the controller, one controller update each.

The engine receives the networks, optimiser, data, a controller learner (REINFORCE or DDPG) and callbacks;
logging, checkpoints and progress are callbacks (`usqa.trainer.engine.base`: an iteration is an episode). With no
learner it trains the non-selective baseline: every frame is selected, same network, same budget.

The predictor recipe (`config.recipe`, docs/recipe.md) adds: warm-up episodes in which every frame is selected
and the controller is not updated (a trained predictor before the reward matters), ultrasound augmentation of
the selected frames, and class-balanced mini-batches; the baseline gets the same augmentation and sampling.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from usqa.contracts.training import TrainConfig
from usqa.trainer.amenability.credit import RewardObserver
from usqa.trainer.amenability.reinforce import ControllerLearner
from usqa.trainer.amenability.rewards import (
    RewardBaseline,
    compute_reward,
    frame_accuracy,
    frame_dice,
    selection_probabilities,
)
from usqa.trainer.augment import UltrasoundAugment
from usqa.trainer.data import SplitTensors, TaskData, train_sampler
from usqa.trainer.engine.base import Callback, Engine, Logs

INFERENCE_CHUNK = 256


@dataclass(frozen=True)
class EpisodeLog:
    """What one episode did: the logs the callbacks get (as a dict), one line of metrics.jsonl."""

    stage: str  # "baseline" or "amenability"
    episode: int  # 1-based
    episodes: int
    reward: float  # mean unclipped reward R~_t over the episode
    clipped_reward: float  # mean R~_t - Rbar_t
    metric: float  # mean task metric (accuracy or Dice) on the reward frames at the episode's end
    selected_fraction: float
    elapsed_s: float
    eta_s: float
    learner: dict[str, float] = field(default_factory=dict)
    warmup: bool = False  # a warm-up episode: every frame selected, no controller update

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def predictor_loss(logits: torch.Tensor, targets: torch.Tensor, kind: str = "ce") -> torch.Tensor:
    """L_f: cross-entropy, per frame for classification and per pixel for segmentation (section 3).

    "dice_ce" adds the soft Dice loss of the foreground: a small U-Net on pixel-wise cross-entropy alone often
    sits for hundreds of steps predicting all background (the gland is a small part of the frame).
    """
    loss = F.cross_entropy(logits, targets)
    if kind == "dice_ce" and logits.dim() == 4:
        foreground = torch.softmax(logits, dim=1)[:, 1].flatten(1)
        truth = (targets == 1).flatten(1).float()
        dice = (2 * (foreground * truth).sum(1) + 1) / (foreground.sum(1) + truth.sum(1) + 1)
        loss = loss + (1 - dice).mean()
    return loss


def frame_metric(task: str, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The per-frame metric the reward and the evaluation use: accuracy or Dice."""
    return frame_accuracy(logits, targets) if task == "classify" else frame_dice(logits, targets)


@torch.no_grad()
def infer(network: nn.Module, frames: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Network outputs for many frames in eval mode, in chunks, on CPU."""
    network.eval()
    outputs = [
        network(frames[i : i + INFERENCE_CHUNK].to(device)).cpu()
        for i in range(0, len(frames), INFERENCE_CHUNK)
    ]
    return torch.cat(outputs)


# One-sided 95 % normal quantile: a gain counts when it exceeds this many standard errors (here and in
# usqa.trainer.amenability.acceptance's gate).
Z_ONE_SIDED_95 = 1.645


class AmenabilityEngine(Engine):
    """Runs Algorithm 1 (with a learner) or the non-selective baseline (without one), resumable per episode."""

    unit = "episode"
    progress_fields: ClassVar[dict[str, str]] = {
        "reward": "{reward:.3f}",
        "metric": "{metric:.3f}",
        "kept": "{selected_fraction:.2f}",
    }

    def __init__(
        self,
        config: TrainConfig,
        predictor: nn.Module,
        optimiser: torch.optim.Optimizer,
        data: TaskData,
        reward_index: torch.Tensor,
        learner: ControllerLearner | None = None,
        callbacks: Sequence[Callback] = (),
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__("baseline" if learner is None else "amenability", config.episodes, callbacks)
        self.config, self.predictor, self.optimiser, self.data = config, predictor, optimiser, data
        self.learner, self.device = learner, torch.device(device)
        # The reward pool: the fixed reward subset, or with `reward.resample` the pool each step draws from.
        self.reward_pool = reward_index
        self.reward_frames = data.val.frames[reward_index]
        self.reward_targets = data.val.targets[reward_index]
        seed = config.seed + (0 if learner is not None else 1000)
        self.reward_generator = torch.Generator().manual_seed(seed + 5)
        self.sampler = train_sampler(data.train, config, seed=seed + 2)
        self.augment: UltrasoundAugment | None = None
        if config.recipe.augment == "ultrasound":
            self.augment = UltrasoundAugment(seed + 4, segmentation=config.task == "segment")
        self.selection_generator = torch.Generator().manual_seed(seed + 1)
        self.baseline = RewardBaseline(config.reward.baseline, config.reward.alpha, config.reward.window)
        self.schedule: torch.optim.lr_scheduler.LRScheduler | None = None
        if config.predictor_schedule == "cosine":
            self.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
                optimiser, T_max=max(1, config.total_steps)
            )

    @property
    def episode(self) -> int:
        """Episodes done (the engine's iterations)."""
        return self.iteration

    @property
    def networks(self) -> dict[str, nn.Module]:
        if self.learner is None:
            return {"predictor": self.predictor}
        return {"predictor": self.predictor, "controller": self.learner.controller}

    @property
    def train_split(self) -> SplitTensors:
        return self.data.train

    @property
    def selective(self) -> bool:
        """Does the controller select this episode's frames (not the baseline, not a warm-up episode)?"""
        return self.learner is not None and self.iteration >= self.config.recipe.warmup_episodes

    def reward_positions(self) -> torch.Tensor | slice:
        """Positions in the reward pool of this step's reward frames: all, or a fresh seeded draw (resample)."""
        size = len(self.reward_pool)
        if not self.config.reward.resample or size <= self.config.reward_frames:
            return slice(None)  # a view: the same frames every step, which a learner may score once
        return torch.randperm(size, generator=self.reward_generator)[: self.config.reward_frames]

    def start_candidate(self) -> tuple[float, float]:
        """The predictor's task metric on the reward frames (all of them) before the first step, and the margin
        an episode must beat it by: the candidate the run starts from
        (usqa.trainer.engine.callbacks.BestModel.offer_start).

        The margin is the one-sided 95 % sampling error of an episode's check, a mean over the reward frames
        it draws (Z_ONE_SIDED_95 x the per-frame standard deviation / sqrt(frames)): with 15 validation frames,
        one frame more or less is 6.7 points, and the best of 20 checks beat the converged stage by luck alone
        and lost 2.2 points on the real frames' holdout (docs/results.md, 6 Dec 2026)."""
        logits = infer(self.predictor, self.reward_frames, self.device)
        metric = frame_metric(self.config.task, logits, self.reward_targets).double()
        checked = min(len(metric), self.config.reward_frames) if self.config.reward.resample else len(metric)
        spread = float(metric.std()) if len(metric) > 1 else 0.0
        return float(metric.mean()), Z_ONE_SIDED_95 * spread / math.sqrt(max(1, checked))

    def reward_scores(self) -> torch.Tensor | None:
        """Controller scores h_j on the reward frames: fixed within an episode (theta changes per episode)."""
        if self.learner is None or not self.selective or self.config.reward.kind == "avg":
            return None
        return infer(self.learner.controller, self.reward_frames, self.device)

    def step(self, scores_on_val: torch.Tensor | None, last: bool = False) -> tuple[float, float, float]:
        """One t of Algorithm 1; returns (R~_t, R~_t - Rbar_t, fraction of the mini-batch selected).

        The baseline (no learner) and warm-up episodes need no reward: they measure the metric at the episode's
        last step only.
        """
        batch = self.sampler.next()
        frames = self.train_split.frames[batch].to(self.device)
        targets = self.train_split.targets[batch].to(self.device)
        selective = self.selective
        if self.learner is not None and selective:
            constraint = self.config.constraint
            scores = self.learner.act(frames).cpu()
            probabilities = selection_probabilities(scores, constraint.mode, constraint.min_mean_score)
            actions = torch.bernoulli(
                probabilities, generator=self.selection_generator
            )  # a_i ~ Bernoulli(h_i)
        else:
            probabilities = actions = torch.ones(len(batch))
        selected = actions.bool().to(self.device)
        if selected.any():
            self.predictor.train()
            inputs, truth = frames[selected], targets[selected]
            if self.augment is not None:  # after selection: the controller judges the frame as acquired
                inputs, augmented_truth = self.augment(inputs, truth)
                truth = truth if augmented_truth is None else augmented_truth
            loss = predictor_loss(self.predictor(inputs), truth, self.config.predictor_loss)
            self.optimiser.zero_grad(set_to_none=True)
            loss.backward()
            self.optimiser.step()
        if self.schedule is not None:
            self.schedule.step()
        if not selective and not last:
            return float("nan"), float("nan"), 1.0
        positions = self.reward_positions()
        reward_frames, reward_targets = self.reward_frames[positions], self.reward_targets[positions]
        logits = infer(self.predictor, reward_frames, self.device)
        metric = frame_metric(self.config.task, logits, reward_targets)
        kind = self.config.reward.kind if selective else "avg"
        val_scores = None if scores_on_val is None else scores_on_val[positions]
        reward = compute_reward(kind, metric, val_scores, self.config.selective_rejection)
        # Warm-up rewards stay out of the baseline Rbar_t: it should track the controller's episodes only.
        clipped = self.baseline.update(reward) if selective or self.learner is None else 0.0
        if selective and isinstance(self.learner, RewardObserver):
            # Per-frame credit (algo "credit"): the learner sees the reward frames and the predictor's outputs.
            self.learner.observe_reward(reward_frames, logits, reward_targets)
        if self.learner is not None and selective:
            memory = self.learner.memory
            memory.batches.append(batch)
            memory.behaviour.append(probabilities)
            memory.actions.append(actions)
            memory.rewards.append(clipped)
        self._last_metric = float(metric.mean())
        return reward, clipped, float(actions.mean())

    def run_iteration(self) -> Logs:
        """One episode: T steps, then one controller update (none in a warm-up episode)."""
        selective = self.selective
        if self.learner is not None and selective:
            self.learner.start_episode()
        scores_on_val = self.reward_scores()
        rewards, clipped, selected = [], [], []
        steps = self.config.steps_per_episode
        for t in range(steps):
            r, c, s = self.step(scores_on_val, last=t == steps - 1)
            selected.append(s)
            if not math.isnan(r):  # the baseline skips its reward on all but the last step
                rewards.append(r)
                clipped.append(c)
        diagnostics: dict[str, float] = {}
        if self.learner is not None and selective:
            frames = self.train_split.frames
            diagnostics = self.learner.update(frames if self.device.type == "cpu" else frames.to(self.device))
        return {
            "reward": sum(rewards) / len(rewards),
            "clipped_reward": sum(clipped) / len(clipped),
            "metric": self._last_metric,
            "selected_fraction": sum(selected) / len(selected),
            "learner": diagnostics,
            "warmup": self.learner is not None and not selective,
        }

    def iteration_logs(self, logs: Logs) -> Logs:
        return EpisodeLog(
            stage=self.stage,
            episode=self.iteration,
            episodes=self.iterations,
            elapsed_s=self.elapsed_s,
            eta_s=self.eta_s,
            **logs,
        ).to_dict()

    def progress_metrics(self, logs: Logs) -> dict[str, float]:
        return {"reward": logs["reward"], "metric": logs["metric"], **logs["learner"]}

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs to continue exactly: networks, optimisers, generators, baseline."""
        return {
            "stage": self.stage,
            "episode": self.episode,
            "predictor": self.predictor.state_dict(),
            "optimiser": self.optimiser.state_dict(),
            "schedule": None if self.schedule is None else self.schedule.state_dict(),
            "learner": None if self.learner is None else self.learner.state_dict(),
            "reward_baseline": self.baseline.state_dict(),
            "sampler": self.sampler.state_dict(),
            "selection_generator": self.selection_generator.get_state(),
            "augment": None if self.augment is None else self.augment.state_dict(),
            "reward_generator": self.reward_generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.iteration = int(state["episode"])
        self.predictor.load_state_dict(state["predictor"])
        self.optimiser.load_state_dict(state["optimiser"])
        if self.schedule is not None:
            self.schedule.load_state_dict(state["schedule"])
        if self.learner is not None:
            self.learner.load_state_dict(state["learner"])
        self.baseline.load_state_dict(state["reward_baseline"])
        self.sampler.load_state_dict(state["sampler"])
        self.selection_generator.set_state(state["selection_generator"])
        if self.augment is not None and state.get("augment") is not None:
            self.augment.load_state_dict(state["augment"])
        if "reward_generator" in state:  # checkpoints from before reward resampling lack it
            self.reward_generator.set_state(state["reward_generator"])
