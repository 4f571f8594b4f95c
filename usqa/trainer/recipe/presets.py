"""The named training budgets (`debug`, `demo`, `default`) and the measured predictor recipe they share.

Tuning, not schema: each choice here was measured (docs/recipe.md, docs/controller.md), so it lives with the
trainer; the floor (usqa.contracts.training) keeps the dataclasses they fill in.
"""

from __future__ import annotations

from dataclasses import replace

from usqa.contracts.frames import FrameSpec
from usqa.contracts.training import (
    PRESETS,
    Algo,
    BackboneConfig,
    ConstraintConfig,
    ControllerConfig,
    CreditConfig,
    DDPGConfig,
    RecipeConfig,
    Reward,
    RewardConfig,
    SupervisedConfig,
    Task,
    TrainConfig,
    UNetConfig,
)
from usqa.trainer.recipe.plan import BUDGETS, PATIENCE


def preset(
    name: str, task: Task = "classify", reward: Reward = "weighted", algo: Algo = "reinforce"
) -> TrainConfig:
    """A named budget: `debug` (seconds, tests), `demo` (<= 90 s on 2 cores), `default` (~5k frames, <= 20 min)."""
    # DDPG's deterministic actor ascends dQ/da; early in training more data always helps the predictor, so
    # under the penalty alone it saturates at h = 1 for every frame within a few episodes ("keep everything",
    # measured). It therefore selects with a fixed budget: the scores only rank frames (rewards.py).
    constraint = ConstraintConfig(mode="budget", min_mean_score=0.8) if algo == "ddpg" else ConstraintConfig()
    base = TrainConfig(
        task=task,
        algo=algo,
        reward=RewardConfig(kind=reward),
        constraint=constraint,
        predictor_loss="dice_ce" if task == "segment" else "ce",
        # algo "credit": the per-frame credit m_j, decided per task on the benchmark's development set
        # (docs/controller.md, `make results`; kappa at prevalence over 3 seeds): the hard Dice for segmentation
        # (0.72 against the soft Dice's 0.45), the probability of the true class for classification (0.54
        # against the 0/1 accuracy's 0.32).
        credit=CreditConfig(metric="hard" if task == "segment" else "soft"),
    )
    if name == "debug":
        small = BackboneConfig(widths=(4, 8))
        return replace(
            base,
            name="debug",
            # The recipe's code paths in seconds: one warm-up episode, best-on-validation; augmentation (the
            # slowest part on CPU) is tested on its own.
            recipe=RecipeConfig(
                warmup_episodes=1, balanced_sampling=True, best_on_validation=True, output_prior=True
            ),
            frame=FrameSpec(size=32),
            episodes=3,
            steps_per_episode=2,
            batch_size=8,
            reward_frames=16,
            backbone=small,
            unet=UNetConfig(widths=(4, 8)),
            controller=ControllerConfig(backbone=small),
            ddpg=DDPGConfig(
                critic_backbone=BackboneConfig(widths=(4, 8)),
                critic_hidden=8,
                updates_per_episode=2,
                transitions_per_update=2,
            ),
            checkpoint_every=1,
            supervised=SupervisedConfig(steps=8, eval_every=2, patience=2),
        )
    if name == "demo":
        small = BackboneConfig(widths=(8, 16, 32))
        return replace(
            base,
            name="demo",
            recipe=recipe_for(task, 20),
            frame=FrameSpec(size=64),
            # Segmentation: 20 episodes, not 10: after 50 steps the U-Net often still gives its initial answer
            # (all or no foreground; docs/recipe.md).
            episodes=20,
            steps_per_episode=5,
            batch_size=32 if task == "classify" else 16,
            reward_frames=128 if task == "classify" else 64,
            backbone=small,
            unet=UNetConfig(widths=(4, 8, 16, 32)),
            controller=ControllerConfig(backbone=small),
            ddpg=DDPGConfig(
                critic_backbone=BackboneConfig(widths=(4, 8, 16)), updates_per_episode=4, critic_hidden=32
            ),
            checkpoint_every=4,
            supervised=stage_for("demo", 64),
        )
    if name == "default":
        if task == "segment":
            # A U-Net step costs ~6x a classifier step: smaller batches and reward set, fewer steps, and 64 px:
            # the segmentation benchmark reaches Dice 0.87 at 64 px (docs/results.md), and at 128 px with the
            # augmentation the run does not fit 20 minutes on 2 shared cores (docs/recipe.md). The heated
            # backbone follows the classification preset, so this changes nothing there.
            return replace(
                base,
                name="default",
                frame=FrameSpec(size=64),
                episodes=40,
                batch_size=16,
                reward_frames=64,
                recipe=recipe_for(task, 40),
                supervised=stage_for("default", 64),
            )
        return replace(
            base,
            name="default",
            recipe=recipe_for(task, base.episodes),
            supervised=stage_for("default", base.frame.size),
        )
    raise ValueError(f"unknown config preset {name!r}; choose one of {', '.join(PRESETS)}")


def stage_for(budget: str, size: int) -> SupervisedConfig:
    """The supervised stage of a preset used without a plan (library callers; `usqa train` plans its own): the
    budget's compute at `size` (usqa.trainer.recipe.plan.BUDGETS), a check every 100 steps (20 for demo)."""
    steps = max(1, round(BUDGETS[budget].supervised_steps_at_64 * (64 / size) ** 2))
    return SupervisedConfig(
        steps=steps, eval_every=min(steps, 20 if budget == "demo" else 100), patience=PATIENCE
    )


def recipe_for(task: Task, episodes: int) -> RecipeConfig:
    """The measured predictor recipe of the demo and default presets (docs/recipe.md says why each part)."""
    return RecipeConfig(
        warmup_episodes=episodes // 4,
        augment="ultrasound",
        # Off: over three seeds it gained no accuracy on the development set and halved the controller's kappa.
        balanced_sampling=False,
        best_on_validation=True,
        early_stopping_patience=None,
        output_prior=True,
    )
