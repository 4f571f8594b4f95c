"""Heating and fine-tuning configuration: dataclasses, the `debug`/`demo`/`default` presets, JSON round trips.

Heating keeps its own frame size and backbone per budget (`HEATING_SHAPES`: the paper's setting scaled to 128 px
for `default`); the RL trainer's input size is its plan's (usqa.trainer.recipe.plan). A heated backbone records
its frame spec, and `usqa train --backbone` takes the run's input size and architecture from it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_args

from usqa.contracts.frames import FrameSpec
from usqa.contracts.training import PRESETS, BackboneConfig, from_dict, with_nested_frame

NoiseModel = Literal["beta", "gaussian", "uniform"]
Upsampling = Literal["nearest", "bilinear"]
MaskSpace = Literal["pixels", "normalised"]
HeatLoss = Literal["paper", "baseline"]
ClassSource = Literal["auto", "preset", "label", "preset_label"]
Augment = Literal["none", "cutmix", "randaugment"]

# The presets are the RL trainer's (usqa.contracts.training.PRESETS); these choices are spelled once, as Literals.
NOISE_MODELS: tuple[str, ...] = get_args(NoiseModel)
UPSAMPLING: tuple[str, ...] = get_args(Upsampling)
MASK_SPACES: tuple[str, ...] = get_args(MaskSpace)
LOSSES: tuple[str, ...] = get_args(HeatLoss)
CLASS_SOURCES: tuple[str, ...] = get_args(ClassSource)
AUGMENTS: tuple[str, ...] = get_args(Augment)

# Heating's frame size and classifier backbone per budget; not the RL trainer's plan (issue #24: the heated
# backbone no longer pins the predictor's input size).
HEATING_SHAPES: dict[str, tuple[FrameSpec, BackboneConfig]] = {
    "debug": (FrameSpec(size=32), BackboneConfig(widths=(4, 8))),
    "demo": (FrameSpec(size=64), BackboneConfig(widths=(8, 16, 32))),
    "default": (FrameSpec(size=128), BackboneConfig()),
}
MSG_UNKNOWN_PRESET = "unknown config preset {name!r}; choose one of {choices}"

# The paper's best blur (Table 2 note: K=13, S=6) was tuned on 224 px inputs.
PAPER_FRAME_SIZE = 224
PAPER_BLUR_KERNEL = 13
PAPER_BLUR_SIGMA = 6.0


def scaled_blur(frame_size: int) -> tuple[int, float]:
    """The paper's K=13, S=6 at 224 px scaled to `frame_size`: same blur relative to the frame (K odd, >= 3).

    At 128 px this is K=7, S=3.43: the kernel keeps the paper's truncation K/S ~ 2.2 (about +-1 sigma), and with
    the 64 x 64 grid the blur still spans ~1.7 grid cells, as at 224 px.
    """
    scale = frame_size / PAPER_FRAME_SIZE
    kernel = max(3, 2 * math.floor(PAPER_BLUR_KERNEL * scale / 2) + 1)
    return kernel, round(PAPER_BLUR_SIGMA * scale, 2)


@dataclass(frozen=True)
class MaskConfig:
    """How a noise matrix becomes a mask (eqs. 4-5): grid, noise model, upsampling, blur, where it multiplies."""

    # G: the noise matrix is G x G; G equal to the frame size is the paper's "pure noise" (no upsampling).
    grid: int = 64
    # beta: M ~ Beta(alpha', beta') (eq. 4). gaussian / uniform (Table 4): a Normal / a Uniform with the mean and
    # variance of that Beta, drawn and scored (log-probability) under its own family, clipped into [0, 1].
    noise: NoiseModel = "beta"
    upsample: Upsampling = "nearest"
    # Gaussian blur of the upsampled mask; kernel 0 (or 1) switches it off.
    blur_kernel: int = 7
    blur_sigma: float = 3.43
    # pixels: I_pre * M on the uint8-valued frame (eq. 5 with I_pre = prepare_frame's output; darkens).
    # normalised: the mask multiplies the network's normalised input (x/255 - mean)/std, as the reference code
    # does on mean/std-normalised tensors (shrinks contrast towards the mean grey).
    space: MaskSpace = "pixels"

    @property
    def blurred(self) -> bool:
        return self.blur_kernel > 1


@dataclass(frozen=True)
class PolicyConfig:
    """The policy network: a light ResNet-10-style g, a projection h to per-cell (alpha, beta), and the EMAs."""

    # ResNet-10 layout: a stem and four stages of one basic block each.
    backbone: BackboneConfig = field(default_factory=lambda: BackboneConfig(widths=(8, 16, 32, 64)))
    # Hidden Linear-BatchNorm-ReLU layers of h before the G*G outputs (two in the reference implementation).
    hidden_layers: int = 2
    # tau_i of eqs. 10-11: share of the dataset-level parameters in each image's parameters (the paper's 0.9).
    tau_image: float = 0.9
    # tau_d of eqs. 12-13: the dataset-level EMA (the paper gives no value; the reference code uses 0.99,
    # a memory of ~100 mini-batches, short against any of our budgets).
    tau_dataset: float = 0.99
    # The dataset-level (log-)parameters start ~ N(0, std^2) (section 3: "random, sampled from normal").
    dataset_init_std: float = 1.0
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4


@dataclass(frozen=True)
class HeatConfig:
    """Everything `usqa heat` needs besides the data; stored in config.json and in every checkpoint."""

    name: str = "default"
    seed: int = 0
    device: str = "cpu"
    frame: FrameSpec = field(default_factory=FrameSpec)
    # auto: preset x label when every data set has the simulator's `preset` column, else `label`.
    classes: ClassSource = "auto"
    steps: int = 2000
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    mask: MaskConfig = field(default_factory=MaskConfig)
    # paper: eq. 8 as published. baseline: eq. 8 with a moving-average baseline subtracted from the policy's
    # reward (variance reduction); the classifier's gradient is the same in both.
    loss: HeatLoss = "paper"
    baseline_momentum: float = 0.9
    eval_frames: int = 512
    checkpoint_every: int = 200

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HeatConfig:
        return from_dict(cls, with_nested_frame(data))


@dataclass(frozen=True)
class FinetuneConfig:
    """Supervised training without masks: fine-tuning a heated backbone, or (no backbone) the normal model."""

    name: str = "default"
    seed: int = 0
    device: str = "cpu"
    frame: FrameSpec = field(default_factory=FrameSpec)
    classes: ClassSource = "auto"
    steps: int = 500
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    # Linear warm-up before the cosine decay (the reference fine-tuning warms up, too).
    warmup_steps: int = 25
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    augment: Augment = "none"
    cutmix_alpha: float = 1.0
    randaugment_ops: int = 2
    randaugment_magnitude: int = 9
    eval_frames: int = 512
    checkpoint_every: int = 100

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FinetuneConfig:
        return from_dict(cls, with_nested_frame(data))


def heating_shapes(name: str) -> tuple[FrameSpec, BackboneConfig]:
    """The frame spec and classifier backbone of heating's budget `name` (a ValueError for an unknown one)."""
    if name not in HEATING_SHAPES:
        raise ValueError(MSG_UNKNOWN_PRESET.format(name=name, choices=", ".join(PRESETS)))
    return HEATING_SHAPES[name]


def heat_preset(name: str) -> HeatConfig:
    """`debug` (seconds, tests), `demo` (about a minute on 2 cores), `default` (128 px, ~15 min on 2 cores)."""
    frame, backbone = heating_shapes(name)
    kernel, sigma = scaled_blur(frame.size)
    base = HeatConfig(name=name, frame=frame, backbone=backbone)
    if name == "debug":
        return replace(
            base,
            steps=4,
            batch_size=8,
            policy=PolicyConfig(backbone=BackboneConfig(widths=(4, 4, 8, 8)), hidden_layers=1),
            mask=MaskConfig(grid=8, blur_kernel=kernel, blur_sigma=sigma),
            eval_frames=16,
            checkpoint_every=2,
        )
    if name == "demo":
        return replace(
            base,
            steps=300,
            policy=PolicyConfig(backbone=BackboneConfig(widths=(4, 8, 16, 32))),
            mask=MaskConfig(grid=32, blur_kernel=kernel, blur_sigma=sigma),
            eval_frames=256,
            checkpoint_every=100,
        )
    return replace(base, mask=MaskConfig(grid=64, blur_kernel=kernel, blur_sigma=sigma))


def finetune_preset(name: str) -> FinetuneConfig:
    """Fine-tuning budgets matching `heat_preset` (a quarter of the heating steps, as the paper's 10 of 90 + 10)."""
    frame, backbone = heating_shapes(name)
    base = FinetuneConfig(name=name, frame=frame, backbone=backbone)
    if name == "debug":
        return replace(base, steps=4, batch_size=8, warmup_steps=1, eval_frames=16, checkpoint_every=2)
    if name == "demo":
        return replace(base, steps=100, warmup_steps=10, eval_frames=256, checkpoint_every=50)
    return base
