"""Making a run's plan: fingerprint, rules, the input-size trial, overrides, and plan.json.

`make_plan(data_dir, task, budget)` measures the training split's fingerprint, derives the plan by rule, and where
the budget asks for it runs the size trial: each candidate size trains the planned network with the supervised
stage for a small fixed budget (`budget.trial_steps` steps on a seeded subset of the training frames, no
augmentation) and is scored on the VALIDATION split (never the holdout); the smallest candidate within one
standard error of the best wins. Overrides (`{"input_size": 64}`) replace fields before the trial, and an
overridden input size skips it. The result is a `PlanRecord`, written as plan.json and read back by a resume.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from usqa.contracts.training import Task, TrainConfig, apply_overrides, from_dict
from usqa.service.datasets import LabelledDataset, load_dataset
from usqa.trainer.recipe.fingerprint import Fingerprint, measure_fingerprint
from usqa.trainer.recipe.plan import (
    BUDGETS,
    Budget,
    Plan,
    apply_plan,
    depth_for,
    derive_plan,
    episode_steps,
    stage_steps,
)

# Segmentation's trial tolerance: Dice has no binomial error; about one standard error of 100 frames' mean Dice.
DICE_TOLERANCE = 0.02


@dataclass(frozen=True)
class PlanRecord:
    """plan.json: the plan, where each field came from, the fingerprint and the trial (if it ran)."""

    budget: str
    plan: Plan
    sources: dict[str, str]
    fingerprint: Fingerprint
    trial: dict[str, Any] | None = None
    overrides: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "budget": self.budget,
            "plan": self.plan.to_dict(),
            "sources": self.sources,
            "fingerprint": self.fingerprint.to_dict(),
            "trial": self.trial,
            "overrides": self.overrides,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlanRecord:
        return cls(
            budget=data["budget"],
            plan=from_dict(Plan, data["plan"]),
            sources=dict(data["sources"]),
            fingerprint=Fingerprint.from_dict(data["fingerprint"]),
            trial=data.get("trial"),
            overrides=dict(data.get("overrides", {})),
        )

    def config(self, preset_config: TrainConfig) -> TrainConfig:
        """The run's config: the budget preset with this plan's shapes."""
        return apply_plan(preset_config, self.plan)

    def summary(self) -> str:
        """The printout at the start of `usqa train` (and all of `--plan-only`)."""
        lines = [f"plan (budget {self.budget}): {self.fingerprint.summary()}"]
        for key, value in self.plan.to_dict().items():
            lines.append(f"  {key:<24} {value!s:<12} {self.sources.get(key, '')}")
        if self.trial:
            scores = ", ".join(
                f"{c['size']} px {c['metric']:.3f} ({c['seconds']:.0f} s)" for c in self.trial["candidates"]
            )
            lines.append(f"  size trial on {self.trial['val_frames']} validation frames: {scores}")
        return "\n".join(lines)


def with_overrides(
    plan: Plan, sources: dict[str, str], overrides: Mapping[str, Any]
) -> tuple[Plan, dict[str, str]]:
    """The plan with `overrides` applied (type-checked; `OverrideError` names a bad key) and marked as such."""
    if not overrides:
        return plan, sources
    plan = apply_overrides(plan, overrides)
    return plan, {**sources, **dict.fromkeys(overrides, "override")}


def trial_subset(dataset: LabelledDataset, frames: int, seed: int) -> LabelledDataset:
    """The data set with its training split cut to a seeded subset of `frames` (validation kept whole)."""
    train = [r for r in dataset.records if r.split == "train"]
    if len(train) <= frames:
        return dataset
    keep = {train[int(i)].line for i in np.random.default_rng(seed).permutation(len(train))[:frames]}
    records = tuple(r for r in dataset.records if r.split != "train" or r.line in keep)
    return replace(dataset, records=records)


def size_trial(
    dataset: LabelledDataset, preset_config: TrainConfig, plan: Plan, budget: Budget, fingerprint: Fingerprint
) -> tuple[int, dict[str, Any]]:
    """The winning input size and the trial's record (each candidate's validation metric and wall time)."""
    from usqa.trainer.amenability.supervised_stage import supervised_stage
    from usqa.trainer.data import split_tensors

    native = min(fingerprint.height, fingerprint.width)
    sizes = [s for s in budget.trial_sizes if s <= native] or [plan.input_size]
    subset = trial_subset(dataset, budget.trial_frames, preset_config.seed)
    candidates: list[dict[str, Any]] = []
    val_frames = 0
    for size in sizes:
        steps = budget.trial_steps
        candidate = replace(
            plan,
            input_size=size,
            depth=depth_for(fingerprint.task, size),
            supervised_steps=steps,
            eval_every=max(1, steps // 5),
            patience=steps,
            augment="none",
        )
        config = apply_plan(preset_config, candidate)
        started = time.perf_counter()
        train, val = split_tensors(subset, "train", config), split_tensors(subset, "val", config)
        num_classes = max(2, int(train.targets.max()) + 1) if config.task == "classify" else 2
        result = supervised_stage(replace(config, num_classes=num_classes), train, val)
        val_frames = min(len(val), config.supervised.val_frames)
        candidates.append(
            {"size": size, "metric": result.best_metric, "seconds": time.perf_counter() - started}
        )
    best = max(c["metric"] for c in candidates)
    if fingerprint.task == "classify":
        tolerance = math.sqrt(max(best * (1 - best), 1e-6) / max(1, val_frames))
    else:
        tolerance = DICE_TOLERANCE
    size = min(c["size"] for c in candidates if c["metric"] >= best - tolerance)
    return size, {
        "candidates": candidates,
        "val_frames": val_frames,
        "tolerance": tolerance,
        "steps": budget.trial_steps,
    }


def make_plan(
    data_dir: Path | str,
    task: Task,
    budget_name: str,
    preset_config: TrainConfig,
    overrides: Mapping[str, Any] | None = None,
    *,
    trial: bool = True,
) -> PlanRecord:
    """Fingerprint, rules, overrides and (when the budget has one, `trial` is set and the input size is not
    overridden) the size trial; the plan's config is `record.config(preset_config)`."""
    overrides = dict(overrides or {})
    budget = BUDGETS[budget_name]
    dataset = load_dataset(data_dir, check_images=False)  # the run's own load checks every image
    fingerprint = measure_fingerprint(dataset, task, seed=preset_config.seed)
    plan, sources = with_overrides(*derive_plan(fingerprint, budget), overrides)
    record: dict[str, Any] | None = None
    # Segmentation takes the rule's size (the target's): a U-Net step costs about 6x a classifier step, and its
    # trial did not finish in 9 minutes on 2 loaded cores (docs/recipe.md).
    tried = budget.trial_sizes if task == "classify" else ()
    if trial and tried and "input_size" not in overrides:
        size, record = size_trial(dataset, preset_config, plan, budget, fingerprint)
        ruled, ruled_sources = derive_plan(fingerprint, budget, size=size)
        plan, sources = with_overrides(ruled, ruled_sources, overrides)
    elif tried and "input_size" not in overrides:
        sources["input_size"] += " (the size trial was skipped)"
    if "input_size" in overrides or "batch_size" in overrides:  # steps and depth follow the size unless set
        steps, eval_every = stage_steps(fingerprint, budget, plan.input_size, plan.batch_size)
        follow: dict[str, Any] = {
            "depth": depth_for(task, plan.input_size),
            "steps_per_episode": episode_steps(budget, plan.input_size),
            "supervised_steps": steps,
            "eval_every": eval_every,
        }
        plan = replace(plan, **{k: v for k, v in follow.items() if k not in overrides})
    return PlanRecord(budget_name, plan, sources, fingerprint, record, overrides)


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """`["input_size=64", "augment=none"]` as a dict; values are JSON where they parse (numbers, booleans)."""
    import json

    parsed: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--plan takes KEY=VALUE, got {item!r}")
        try:
            parsed[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            parsed[key.strip()] = text
    return parsed


def plan_fields() -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(Plan))
