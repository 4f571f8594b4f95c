"""What a retraining job trains: a data set, a task, a budget preset with overrides, an optional start.

`resolve_config` applies a spec's overrides to a `TrainConfig` without torch (usqa.contracts.training is plain
dataclasses): the worker to the trainer's preset, and the API (`check_spec`) to the schema's defaults, so it
refuses a bad override with a 422 before anything is queued without knowing the presets' tuning.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from usqa.contracts.adaptation import MODEL_REF_PATTERN, AdaptMode
from usqa.contracts.training import (
    MSG_TYPE,
    Algo,
    OverrideError,
    Preset,
    Reward,
    RewardConfig,
    Task,
    TrainConfig,
    apply_overrides,
)
from usqa.service.datasets.uploads import DATASET_ID_PATTERN

JOB_ID_PATTERN = r"^[0-9a-f]{32}$"
BACKBONE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\.pt$"
BACKBONES_DIR = "backbones"

# Overrides may change the budget and the learning, not where files come from or what the run is.
FORBIDDEN_OVERRIDES = frozenset({"name", "task", "algo", "backbone_checkpoint", "num_classes"})
MSG_FORBIDDEN = "override {key!r} is not allowed ({why})"


class SpecError(ValueError):
    """A job spec that cannot be trained; the message says which field and why."""


class JobSpec(BaseModel):
    """The body of `POST /retrain` (and what the worker receives)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str = Field(pattern=DATASET_ID_PATTERN, description="id from POST /datasets")
    task: Task
    config: Preset = "demo"
    reward: Reward = "weighted"
    algo: Algo = "credit"  # the best measured (docs/results.md), as `usqa train`
    overrides: dict[str, Any] = Field(
        default_factory=dict,
        description='TrainConfig fields to change, nested as in config.json (e.g. {"episodes": 10})',
    )
    model: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$",
        description="registry model name to publish into (default: the served model, USQA_MODEL_NAME)",
    )
    base_job: str | None = Field(
        default=None,
        pattern=JOB_ID_PATTERN,
        description="an earlier finished job whose trained predictor initialises the networks",
    )
    backbone: str | None = Field(
        default=None,
        pattern=BACKBONE_NAME_PATTERN,
        description="a heated backbone file (usqa heat) in USQA_DATA_ROOT/backbones/",
    )
    class_names: list[str] | None = Field(default=None, min_length=1, max_length=100)
    # Adaptation (issue #17): start from a published version with a label budget instead of training anew.
    adapt_from: str | None = Field(
        default=None,
        pattern=MODEL_REF_PATTERN,
        description="a published version to adapt: NAME, NAME:VERSION or NAME@ALIAS (it must carry weights.npz)",
    )
    labels: int | None = Field(
        default=None, ge=1, le=100_000, description="adaptation: labelled train frames to use (N)"
    )
    adapt_mode: AdaptMode | None = Field(
        default=None, description="adaptation: probe, finetune (default) or controller"
    )
    force: bool = Field(
        default=False,
        description="publish and gate even when the run's verdict failed (predictor no better than the trivial "
        "one, controller without spread or with kappa <= 0 on labelled validation frames)",
    )


# An adaptation trains the version's own networks with its own config: only its budget, its seed and where
# it trains (the worker sets `device` from USQA_TRAIN_DEVICE) can change.
ADAPT_OVERRIDES = frozenset({"seed", "episodes", "steps", "device"})
MSG_ADAPT_OVERRIDE = "override {key!r} does not apply to an adaptation (allowed: {allowed})"
MSG_ADAPT_FIELDS = "labels and adapt_mode belong to an adaptation: set adapt_from too"
MSG_ADAPT_LABELS = "an adaptation needs labels (N, the labelled train frames to use)"
MSG_ADAPT_START = (
    "an adaptation starts from adapt_from's weights; base_job and backbone cannot be combined with it"
)


def check_adaptation(spec: JobSpec) -> None:
    """The adaptation fields are all-or-nothing and exclude the other starting points (`SpecError`)."""
    if spec.adapt_from is None:
        if spec.labels is not None or spec.adapt_mode is not None:
            raise SpecError(MSG_ADAPT_FIELDS)
        return
    if spec.labels is None:
        raise SpecError(MSG_ADAPT_LABELS)
    if spec.base_job is not None or spec.backbone is not None:
        raise SpecError(MSG_ADAPT_START)
    for key, value in spec.overrides.items():
        if key not in ADAPT_OVERRIDES:
            raise SpecError(MSG_ADAPT_OVERRIDE.format(key=key, allowed=", ".join(sorted(ADAPT_OVERRIDES))))
        if key == "device":
            if not isinstance(value, str):
                raise SpecError(MSG_TYPE.format(key=key, expected="a device name", value=value))
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < (0 if key == "seed" else 1):
            raise SpecError(MSG_TYPE.format(key=key, expected="a non-negative integer", value=value))


def check_spec(spec: JobSpec) -> None:
    """Refuse a spec the trainer cannot use (`SpecError`): its overrides checked against the schema's defaults.

    The presets only change values, never which keys exist or their types, so a spec that fits the defaults
    fits its preset (which the worker resolves, usqa.trainer.jobs.retrain).
    """
    resolve_config(spec, TrainConfig(task=spec.task, algo=spec.algo, reward=RewardConfig(kind=spec.reward)))


def resolve_config(spec: JobSpec, base: TrainConfig, *, backbone_path: Path | None = None) -> TrainConfig:
    """`base` (the spec's preset) with the spec's overrides; raises `SpecError` naming the first bad override."""
    check_adaptation(spec)
    if spec.adapt_from is not None:
        return (
            base  # the worker adapts the version's own config (usqa.trainer.adaptation.adapt); checked above
        )
    for key in spec.overrides:
        head = key.partition(".")[0]
        if head in FORBIDDEN_OVERRIDES:
            why = "set by the spec's own fields" if head != "backbone_checkpoint" else "use `backbone`"
            raise SpecError(MSG_FORBIDDEN.format(key=head, why=why))
    try:
        config = apply_overrides(base, spec.overrides)
    except OverrideError as exc:
        raise SpecError(str(exc)) from exc
    if config.episodes < 1 or config.steps_per_episode < 1 or config.batch_size < 1:
        raise SpecError("episodes, steps_per_episode and batch_size must be at least 1")
    if not 8 <= config.frame.size <= 512:
        raise SpecError(f"frame.size must be between 8 and 512, got {config.frame.size}")
    if backbone_path is not None:
        config = replace(config, backbone_checkpoint=str(backbone_path))
    return config


def check_id(value: str, pattern: str, what: str) -> str:
    if not re.fullmatch(pattern, value):
        raise SpecError(f"{value!r} is not a {what} id")
    return value
