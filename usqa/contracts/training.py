"""Training configuration: the nested dataclasses, their vocabularies and one typed override function.

Torch-free on purpose: the API checks a retraining spec's overrides against these schemas before anything is
queued, and the worker trains from the same objects. The budget presets and config.json live in the trainer
(usqa.trainer.recipe); a run's resolved config is stored in every checkpoint, so a checkpoint rebuilds its own
networks without the command line that made it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal, TypeVar, get_args

from usqa.contracts.frames import FrameSpec
from usqa.contracts.graphs import Task

Reward = Literal["avg", "weighted", "selective"]
Algo = Literal["reinforce", "ddpg", "credit"]
# The trainer's named budgets (usqa.trainer.recipe.presets); the API accepts a preset by name.
Preset = Literal["debug", "demo", "default"]

TASKS: tuple[str, ...] = get_args(Task)
REWARDS: tuple[str, ...] = get_args(Reward)
ALGOS: tuple[str, ...] = get_args(Algo)
PRESETS: tuple[str, ...] = get_args(Preset)
# The paper's operating points (section 4): 5 % rejected for classification, 15 % for segmentation.
OPERATING_POINT: dict[str, float] = {"classify": 0.05, "segment": 0.15}

T = TypeVar("T")


@dataclass(frozen=True)
class BackboneConfig:
    """A small ResNet-style feature extractor shared by the classifier, the controller and the critic."""

    in_channels: int = 1
    widths: tuple[int, ...] = (16, 32, 64, 128)
    blocks_per_stage: int = 1
    # A 3x3 max-pool after the stride-2 stem (as in ResNet): a quarter of the compute at the same input size.
    stem_pool: bool = True
    # Frames arrive uint8-valued; the network scales them by 1/255 and then by this mean/std (in the graph).
    pixel_mean: float = 0.5
    pixel_std: float = 0.25


@dataclass(frozen=True)
class UNetConfig:
    """A small U-Net for binary segmentation (two output channels, pixel-wise cross-entropy as in the paper)."""

    in_channels: int = 1
    widths: tuple[int, ...] = (8, 16, 32, 64)
    num_classes: int = 2
    pixel_mean: float = 0.5
    pixel_std: float = 0.25
    # Initial foreground probability of every pixel (the output bias); None: the layer's default init.
    foreground_prior: float | None = None


@dataclass(frozen=True)
class ControllerConfig:
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    # The score starts near this value (bias of the sigmoid head), above the constraint c.
    initial_score: float = 0.8


@dataclass(frozen=True)
class ConstraintConfig:
    """E[h] >= c (eq. 3): a quadratic penalty lambda * max(0, c - mean h)^2 on the controller loss, and, in
    "budget" mode, selection probabilities normalised to keep a fraction c of each mini-batch (see
    `rewards.selection_probabilities`), so that neither h = 0 nor "keep everything" is a solution."""

    mode: Literal["penalty", "budget"] = "penalty"
    min_mean_score: float = 0.5
    penalty: float = 10.0


@dataclass(frozen=True)
class RewardConfig:
    kind: Reward = "weighted"
    # s_rej of R_sel; None means the task's operating point (5 % classify, 15 % segment).
    selective_rejection: float | None = None
    # Baseline Rbar_t: "ema" (the paper, alpha_R = 0.9) or "window" (mean of the last `window` rewards).
    baseline: Literal["ema", "window"] = "ema"
    alpha: float = 0.9
    window: int = 10
    # Draw the `reward_frames` afresh from the validation pool at every step (seeded), so the controller cannot
    # fit one fixed reward set; with False the subset is fixed for the run (the paper's setting).
    resample: bool = False
    # Share of the validation split never used for the reward (kept for checks on frames the reward never saw).
    holdout_fraction: float = 0.0


@dataclass(frozen=True)
class ReinforceConfig:
    learning_rate: float = 1e-3
    # Discount of the per-step advantages into a return-to-go; 0 credits each action with its own step only.
    discount: float = 0.0


@dataclass(frozen=True)
class DDPGConfig:
    """Section 2.2: actor = controller, critic Q(frame, score), target copies (tau), OU exploration noise."""

    actor_learning_rate: float = 1e-3
    critic_learning_rate: float = 1e-3
    tau: float = 0.001
    discount: float = 0.9
    ou_theta: float = 0.15  # mean reversion rate
    ou_sigma: float = 0.2  # scale
    critic_backbone: BackboneConfig = field(default_factory=lambda: BackboneConfig(widths=(8, 16, 32, 64)))
    critic_hidden: int = 64
    replay_capacity: int = 2000
    updates_per_episode: int = 4
    transitions_per_update: int = 2


@dataclass(frozen=True)
class CreditConfig:
    """algo "credit" (usqa/trainer/amenability/credit.py): R_w's exact per-frame gradient on the reward frames
    (eq. 2), with an optional PPO-clipped policy-gradient term for the training-frame selection (eq. 8), several
    updates per episode."""

    learning_rate: float = 1e-3
    # Per-frame advantage of a reward frame: "exact" m_j - R_w (dR_w/dh_j up to 1 / sum h), or "leave_one_out"
    # m_j - R_w without frame j.
    advantage: Literal["exact", "leave_one_out"] = "exact"
    # Smooth per-frame metric for the credit: probability of the true class / soft Dice ("soft"), or the
    # reported 0/1 accuracy / hard Dice ("hard"). The presets choose per task (hard for segmentation).
    metric: Literal["soft", "hard"] = "soft"
    # Weight of the per-frame R_w credit term (0: PPO-clipped REINFORCE alone).
    frame_weight: float = 1.0
    # Weight of the episode's policy-gradient term (the REINFORCE path through the selected training frames).
    policy_weight: float = 1.0
    # Controller updates per episode; after the first the policy term uses pi_new / pi_behaviour, clipped.
    updates_per_episode: int = 4
    clip_ratio: float = 0.2


@dataclass(frozen=True)
class RecipeConfig:
    """How the predictor learns on data it has not seen before (docs/recipe.md: each choice and its measurement)."""

    # Algorithm 1's first `warmup_episodes` select every frame and do not update the controller, so the
    # predictor is trained (not random) when the reward starts to mean something. Counted inside `episodes`,
    # so the non-selective baseline keeps the same budget.
    warmup_episodes: int = 0
    # "ultrasound": gain/contrast/gamma, speckle-like multiplicative noise, left-right flips, small affine
    # (usqa.trainer.augment, MONAI transforms, seeded); "none": frames as prepared.
    augment: Literal["none", "ultrasound"] = "none"
    # Classification mini-batches drawn with equal expected counts per class (usqa.trainer.data.BalancedSampler).
    balanced_sampling: bool = False
    # Keep the predictor of the episode with the best validation metric (the reward frames), and stop after
    # `early_stopping_patience` episodes without improvement (None: never stop early).
    best_on_validation: bool = False
    early_stopping_patience: int | None = None
    # Segmentation: start the U-Net at the training masks' foreground fraction (`unet.foreground_prior`, set by
    # `train()` from the data) instead of a random output bias, which starts it near "everything is organ".
    output_prior: bool = False


@dataclass(frozen=True)
class SupervisedConfig:
    """The supervised stage (usqa.trainer.amenability.supervised_stage): the predictor trained on every training
    frame to convergence before Algorithm 1 and the non-selective baseline both continue from it."""

    # Most optimiser steps; 0 switches the stage off (a config.json from before the stage means what it meant).
    steps: int = 0
    # Steps between two validation checks (an iteration of the stage's engine; the plan makes it about an epoch).
    eval_every: int = 50
    # Stop after this many checks without a better validation metric; the best check's weights are restored.
    patience: int = 5
    # AdamW's peak learning rate; "one_cycle" warms up over the first 30 % of `steps` then anneals (cosine).
    learning_rate: float = 3e-3
    schedule: Literal["one_cycle", "cosine"] = "one_cycle"
    # Validation frames scored at each check (a seeded subset when the split is larger; never the holdout).
    val_frames: int = 1024


@dataclass(frozen=True)
class TrainConfig:
    """Everything `train` needs besides the data: resolved once, stored in config.json and in checkpoints."""

    name: str = "default"
    task: Task = "classify"
    algo: Algo = "reinforce"
    seed: int = 0
    device: str = "cpu"
    # How a decoded frame becomes a network input: the same spec the served model's manifest records.
    frame: FrameSpec = field(default_factory=FrameSpec)
    # Algorithm 1: `episodes` controller updates, each after T = `steps_per_episode` predictor mini-batches.
    episodes: int = 60
    steps_per_episode: int = 10
    batch_size: int = 32
    predictor_learning_rate: float = 1e-3
    # Cosine decay of the predictor's learning rate to 0 over the run, so the final predictor is a settled one.
    predictor_schedule: Literal["cosine", "constant"] = "cosine"
    # L_f: "ce" (the paper), or "dice_ce" (segmentation: cross-entropy + soft Dice, see engine.predictor_loss).
    predictor_loss: Literal["ce", "dice_ce"] = "ce"
    weight_decay: float = 1e-4
    # Validation frames used for the reward each step (a fixed, seeded subset; all of them when larger).
    reward_frames: int = 256
    num_classes: int = 2
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    unet: UNetConfig = field(default_factory=UNetConfig)
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    constraint: ConstraintConfig = field(default_factory=ConstraintConfig)
    reinforce: ReinforceConfig = field(default_factory=ReinforceConfig)
    ddpg: DDPGConfig = field(default_factory=DDPGConfig)
    # The non-selective baseline predictor: same network and budget (episodes x steps x batch), all frames.
    train_baseline: bool = True
    recipe: RecipeConfig = field(default_factory=RecipeConfig)
    checkpoint_every: int = 5
    backbone_checkpoint: str | None = None
    credit: CreditConfig = field(default_factory=CreditConfig)
    supervised: SupervisedConfig = field(default_factory=SupervisedConfig)

    @property
    def total_steps(self) -> int:
        return self.episodes * self.steps_per_episode

    @property
    def selective_rejection(self) -> float:
        s = self.reward.selective_rejection
        return OPERATING_POINT[self.task] if s is None else s

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return from_dict(cls, with_nested_frame(data))


# Configs written before the frame spec was nested (the shipped v1 manifest, older runs) kept it flat.
LEGACY_FRAME_KEYS: dict[str, str] = {
    "frame_size": "size",
    "frame_crop": "crop",
    "frame_interpolation": "interpolation",
}


def with_nested_frame(data: dict[str, Any]) -> dict[str, Any]:
    """`data` with legacy flat `frame_*` keys moved into the nested `frame` object."""
    legacy = {LEGACY_FRAME_KEYS[k]: v for k, v in data.items() if k in LEGACY_FRAME_KEYS}
    if not legacy:
        return data
    rest = {k: v for k, v in data.items() if k not in LEGACY_FRAME_KEYS}
    return {**rest, "frame": {**legacy, **rest.get("frame", {})}}


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Rebuild a (nested, frozen) config dataclass from `asdict` output; unknown keys are an error."""
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown config key(s) {sorted(unknown)}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value)
    return cls(**kwargs)


def _coerce(hint: Any, value: Any) -> Any:
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return from_dict(hint, value)  # type: ignore[arg-type]
    origin = typing.get_origin(hint)
    if origin is tuple and isinstance(value, list | tuple):
        return tuple(value)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            if dataclasses.is_dataclass(arg) and isinstance(value, dict):
                return from_dict(arg, value)  # type: ignore[arg-type]
    return value


MSG_UNKNOWN = "override {key!r} is not a training setting (see usqa/contracts/training.py)"
MSG_TYPE = "override {key!r} must be {expected}, got {value!r}"
MSG_RANGE = "override {key!r} must be positive, got {value!r}"


class OverrideError(ValueError):
    """An override that names no setting or does not fit its type; the message names the dotted key."""


def apply_overrides(config: T, overrides: Mapping[str, Any]) -> T:
    """`config` (a config dataclass) with `overrides` applied, each value checked against its field's type.

    Keys are dotted (`"reward.kind"`) or nested objects as in config.json (`{"reward": {"kind": "avg"}}`);
    numbers may not be negative. Raises `OverrideError` naming the first bad key.
    """
    return _apply(config, overrides, "")


def _apply(obj: T, overrides: Mapping[str, Any], prefix: str) -> T:
    hints = typing.get_type_hints(type(obj))
    known = {f.name for f in fields(obj)}  # type: ignore[arg-type]
    changes: dict[str, Any] = {}
    for key, value in _nested(overrides, prefix).items():
        dotted = f"{prefix}{key}"
        if key not in known:
            raise OverrideError(MSG_UNKNOWN.format(key=dotted))
        changes[key] = _checked(dotted, hints[key], getattr(obj, key), value)
    try:
        return replace(obj, **changes)  # type: ignore[type-var]
    except ValueError as exc:  # a schema's own check (FrameSpec.__post_init__)
        raise OverrideError(f"override {prefix.rstrip('.') or type(obj).__name__!r}: {exc}") from exc


def _nested(overrides: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Dotted keys as nested objects: {"reward.kind": "avg"} -> {"reward": {"kind": "avg"}}."""
    nested: dict[str, Any] = {}
    for key, value in overrides.items():
        head, dot, rest = str(key).partition(".")
        if dot:
            value = {rest: value}
        if isinstance(nested.get(head), Mapping) and isinstance(value, Mapping):
            value = {**nested[head], **value}
        elif head in nested:
            raise OverrideError(MSG_TYPE.format(key=f"{prefix}{head}", expected="set once", value=value))
        nested[head] = value
    return nested


def _checked(key: str, hint: Any, current: Any, value: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(hint):
            return None
        (inner,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if current is None and isinstance(inner, type) and dataclasses.is_dataclass(inner):
            current = inner()  # an unset optional section starts from its defaults
        return _checked(key, inner, current, value)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise OverrideError(MSG_TYPE.format(key=key, expected="an object", value=value))
        return _apply(current, value, f"{key}.")
    if origin is Literal:
        if value not in typing.get_args(hint):
            choices = ", ".join(repr(a) for a in typing.get_args(hint))
            raise OverrideError(MSG_TYPE.format(key=key, expected=f"one of {choices}", value=value))
        return value
    ok, expected = _fits(hint, origin, value)
    if not ok:
        raise OverrideError(MSG_TYPE.format(key=key, expected=expected, value=value))
    if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
        raise OverrideError(MSG_RANGE.format(key=key, value=value))
    return tuple(value) if origin is tuple else value


def _fits(hint: Any, origin: Any, value: Any) -> tuple[bool, str]:
    """Whether `value` fits a scalar or tuple field of type `hint`, and how the error would name the type."""
    number = not isinstance(value, bool)
    if hint is bool:
        return isinstance(value, bool), "true or false"
    if hint is int:
        return number and isinstance(value, int), "an integer"
    if hint is float:
        return number and isinstance(value, int | float), "a number"
    if hint is str:
        return isinstance(value, str), "a string"
    if origin is tuple:
        items = value if isinstance(value, list | tuple) else [None]
        positive = all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in items)
        return positive, "a list of positive integers"
    return isinstance(value, origin or hint), getattr(origin or hint, "__name__", str(hint))
