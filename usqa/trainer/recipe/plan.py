"""The plan: the shapes of a run derived from the data's fingerprint, within a budget (nnU-Net's lesson).

A budget (`debug`, `demo`, `default`: how long) and a fingerprint (usqa.trainer.recipe.fingerprint: what the data
are) give a `Plan`: input size, network depth and width, batch size, the supervised stage's learning rate,
schedule, step budget and validation rhythm, Algorithm 1's episodes, augmentation, class balancing and the
input's intensity normalisation. Each field says where it came from (`sources`: a rule, the size trial, the
budget, or an override); docs/recipe.md gives the measurement behind each rule. `apply_plan(config, plan)` turns a
budget preset into the run's config; the plan is written as plan.json beside config.json and a resume reads it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, replace
from typing import Any, Literal

from usqa.contracts.training import SupervisedConfig, Task, TrainConfig
from usqa.trainer.recipe.fingerprint import Fingerprint

# The input sizes the rules and the trial choose from (a U-Net needs a size divisible by 2 ** (levels - 1)).
CANDIDATE_SIZES: tuple[int, ...] = (32, 64, 96, 128)
# Rule: the smallest size within noise of the best on the development set (docs/recipe.md, "Frame size").
RULE_SIZE = 64
# Rule: a segmentation target at least this many input pixels across (below it the U-Net's deepest level sees
# less than a pixel of it).
MIN_TARGET_PIXELS = 8
# Rule: downsample until the deepest feature map is about 4 px (classifier: stem /4, then /2 per stage) or 8 px
# (U-Net: /2 per level), as nnU-Net does.
DEEPEST_CLASSIFIER_PX = 4
DEEPEST_UNET_PX = 8
# The supervised stage: AdamW at a one-cycle peak of 3e-3 for at most MAX_EPOCHS epochs, a validation check every
# epoch, stopping after PATIENCE checks without improvement (the ordinary CNN of issue #24: AdamW, one-cycle,
# 60 epochs, best-on-validation). Algorithm 1 then continues at a tenth of the peak.
PEAK_LEARNING_RATE = 3e-3
MAX_EPOCHS = 60
PATIENCE = 6
CONTINUE_LR_FACTOR = 0.1
# Rule: class-balanced batches only for a strongly imbalanced training split (docs/recipe.md: off otherwise).
IMBALANCE = 0.8


@dataclass(frozen=True)
class Budget:
    """How long a run may take (the presets' names); the plan fits the shapes into it."""

    name: str
    max_size: int  # debug runs in seconds at a small input whatever the data
    supervised_steps_at_64: int  # the stage's most steps at 64 px; scaled by (64 / size)^2 elsewhere
    min_eval_every: int
    episodes: dict[str, int]  # per task
    steps_per_episode: int
    batch_size: dict[str, int]
    width: int  # the classifier's first stage (doubling per stage)
    unet_width: int
    augment: Literal["none", "ultrasound"]
    trial_sizes: tuple[int, ...] = ()  # classification only; empty: no size trial, the rule decides
    trial_steps: int = 0
    trial_frames: int = 0  # training frames the trial uses (a seeded subset)


BUDGETS: dict[str, Budget] = {
    # Seconds: the tests' budget, every code path on a tiny network at 32 px.
    "debug": Budget(
        name="debug",
        max_size=32,
        supervised_steps_at_64=8,
        min_eval_every=2,
        episodes={"classify": 3, "segment": 3},
        steps_per_episode=2,
        batch_size={"classify": 8, "segment": 8},
        width=4,
        unet_width=4,
        augment="none",
    ),
    # About 90 s on 2 cores for the 2,400-frame development set (docs/recipe.md): no trial, the rule's size.
    "demo": Budget(
        name="demo",
        max_size=64,
        supervised_steps_at_64=200,
        min_eval_every=20,
        episodes={"classify": 20, "segment": 20},
        steps_per_episode=5,
        batch_size={"classify": 32, "segment": 16},
        width=8,
        unet_width=4,
        augment="ultrasound",
    ),
    # Within 20 minutes on 2 cores for about 5,000 frames (docs/recipe.md), the size trial included.
    "default": Budget(
        name="default",
        max_size=128,
        supervised_steps_at_64=2000,
        min_eval_every=50,
        episodes={"classify": 60, "segment": 40},
        steps_per_episode=10,
        batch_size={"classify": 32, "segment": 16},
        width=16,
        unet_width=8,
        augment="ultrasound",
        trial_sizes=(64, 96, 128),
        trial_steps=150,
        trial_frames=1500,
    ),
}


@dataclass(frozen=True)
class Plan:
    """The run's shapes; every field overridable (`usqa train --plan input_size=64`)."""

    input_size: int
    depth: int  # classifier stages / U-Net levels
    width: int  # channels of the first stage / level, doubled at each
    batch_size: int
    learning_rate: float  # the supervised stage's peak (AdamW)
    schedule: Literal["one_cycle", "cosine"]
    supervised_steps: int
    eval_every: int
    patience: int
    episodes: int
    steps_per_episode: int
    predictor_learning_rate: float  # Algorithm 1 and the baseline, continuing from the stage
    augment: Literal["none", "ultrasound"]
    balanced_sampling: bool
    pixel_mean: float  # the input's normalisation, (x / 255 - mean) / std, from the training frames
    pixel_std: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def rule_size(fingerprint: Fingerprint, budget: Budget) -> tuple[int, str]:
    """The input size by rule, and the rule's words."""
    native = min(fingerprint.height, fingerprint.width) or RULE_SIZE
    allowed = [s for s in CANDIDATE_SIZES if s <= budget.max_size] or [min(CANDIDATE_SIZES)]
    size = max(s for s in allowed if s <= RULE_SIZE) if budget.max_size >= RULE_SIZE else max(allowed)
    why = f"{size} px: the smallest size within noise of the best on the development set"
    if fingerprint.task == "segment" and fingerprint.target_diameter_fraction:
        across = fingerprint.target_diameter_fraction
        fits = [s for s in allowed if s * across >= MIN_TARGET_PIXELS]
        if fits and min(fits) > size:
            size = min(fits)
            why = (
                f"{size} px: the target ({across:.1%} of the side) spans >= {MIN_TARGET_PIXELS} input pixels"
            )
    if size > native:
        size = max([s for s in allowed if s <= native] or [min(allowed)])
        why = f"{size} px: no larger than the frames ({native} px)"
    if budget.max_size < RULE_SIZE:
        why += f" (budget {budget.name} caps it at {budget.max_size} px)"
    return size, "rule: " + why


def depth_for(task: Task, size: int) -> int:
    """Stages (classifier) or levels (U-Net) until the deepest map is about 4 px (8 px for the U-Net)."""
    if task == "classify":
        return max(2, 1 + int(math.log2(max(1, size // 4) / DEEPEST_CLASSIFIER_PX)))
    levels = max(2, 1 + int(math.log2(max(1, size) / DEEPEST_UNET_PX)))
    while levels > 2 and size % 2 ** (levels - 1):
        levels -= 1
    return levels


def stage_steps(fingerprint: Fingerprint, budget: Budget, size: int, batch: int) -> tuple[int, int]:
    """(the supervised stage's step budget, steps between checks): MAX_EPOCHS epochs, within the budget's
    compute (its steps at 64 px, scaled by the pixels per frame), a check about every epoch."""
    epoch = max(1, math.ceil(fingerprint.frames / batch))
    compute = max(1, round(budget.supervised_steps_at_64 * (64 / size) ** 2))
    steps = min(MAX_EPOCHS * epoch, compute)
    eval_every = max(budget.min_eval_every, min(epoch, steps // 10 or 1))
    return steps, min(eval_every, steps)


def episode_steps(budget: Budget, size: int) -> int:
    """Algorithm 1's T: the budget's steps at 64 px, fewer for larger inputs (the same compute), at least 2."""
    return max(2, min(budget.steps_per_episode, round(budget.steps_per_episode * (64 / size) ** 2)))


def derive_plan(
    fingerprint: Fingerprint, budget: Budget, size: int | None = None
) -> tuple[Plan, dict[str, str]]:
    """The plan by rule (with `size` from the trial when given) and each field's source."""
    task = fingerprint.task
    sources: dict[str, str] = {}
    if size is None:
        size, sources["input_size"] = rule_size(fingerprint, budget)
    else:
        sources["input_size"] = "trial: the smallest candidate within one standard error of the best"
    batch = min(budget.batch_size[task], max(4, fingerprint.frames // 16))
    steps, eval_every = stage_steps(fingerprint, budget, size, batch)
    plan = Plan(
        input_size=size,
        depth=depth_for(task, size),
        width=budget.width if task == "classify" else budget.unet_width,
        batch_size=batch,
        learning_rate=PEAK_LEARNING_RATE,
        schedule="one_cycle",
        supervised_steps=steps,
        eval_every=eval_every,
        patience=PATIENCE,
        episodes=budget.episodes[task],
        steps_per_episode=episode_steps(budget, size),
        predictor_learning_rate=round(PEAK_LEARNING_RATE * CONTINUE_LR_FACTOR, 6),
        augment=budget.augment,
        balanced_sampling=task == "classify" and fingerprint.majority_fraction >= IMBALANCE,
        pixel_mean=round(fingerprint.intensity_mean / 255, 4),
        pixel_std=round(max(fingerprint.intensity_std, 1.0) / 255, 4),
    )
    deepest = "4 px (stem /4, /2 per stage)" if task == "classify" else "8 px (/2 per level)"
    sources.update(
        depth=f"rule: downsample until the deepest map is about {deepest}",
        width=f"budget {budget.name}: {plan.width} channels first, doubled at each stage",
        batch_size=f"budget {budget.name} ({budget.batch_size[task]}), at most a sixteenth of the frames",
        learning_rate="rule: AdamW one-cycle peak 3e-3 (the ordinary CNN of issue #24)",
        schedule="rule: one-cycle (warm-up 30 %, cosine anneal)",
        supervised_steps=f"rule: {MAX_EPOCHS} epochs at most, within budget {budget.name}'s compute",
        eval_every="rule: a validation check about every epoch",
        patience=f"rule: stop after {PATIENCE} checks without a better validation metric",
        episodes=f"budget {budget.name}",
        steps_per_episode=f"budget {budget.name} ({budget.steps_per_episode} at 64 px), scaled by (64 / size)^2",
        predictor_learning_rate="rule: a tenth of the peak (continuing from the supervised stage)",
        augment=f"budget {budget.name}",
        balanced_sampling=f"rule: on when the majority class is >= {IMBALANCE:.0%} of the training frames",
        pixel_mean="fingerprint: the training frames' mean grey level",
        pixel_std="fingerprint: the training frames' grey-level standard deviation",
    )
    return plan, sources


def apply_plan(config: TrainConfig, plan: Plan) -> TrainConfig:
    """`config` (a budget preset) with the plan's shapes."""
    widths = tuple(plan.width * 2**i for i in range(plan.depth))
    backbone = replace(config.backbone, widths=widths, pixel_mean=plan.pixel_mean, pixel_std=plan.pixel_std)
    unet = replace(config.unet, widths=widths, pixel_mean=plan.pixel_mean, pixel_std=plan.pixel_std)
    controller_backbone = (
        backbone
        if config.task == "classify"
        else replace(config.controller.backbone, pixel_mean=plan.pixel_mean, pixel_std=plan.pixel_std)
    )
    return replace(
        config,
        frame=replace(config.frame, size=plan.input_size),
        batch_size=plan.batch_size,
        backbone=backbone,
        unet=unet,
        controller=replace(config.controller, backbone=controller_backbone),
        episodes=plan.episodes,
        steps_per_episode=plan.steps_per_episode,
        predictor_learning_rate=plan.predictor_learning_rate,
        # The supervised stage has trained the predictor: no warm-up episodes are needed before the controller.
        recipe=replace(
            config.recipe,
            augment=plan.augment,
            balanced_sampling=plan.balanced_sampling,
            warmup_episodes=0 if plan.supervised_steps > 0 else config.recipe.warmup_episodes,
        ),
        supervised=SupervisedConfig(
            steps=plan.supervised_steps,
            eval_every=plan.eval_every,
            patience=plan.patience,
            learning_rate=plan.learning_rate,
            schedule=plan.schedule,
        ),
    )
