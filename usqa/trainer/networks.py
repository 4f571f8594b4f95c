"""The networks: task predictors f(x; w) (classifier, U-Net) and the controller h(x; theta) (section 2.1).

Pure `nn.Module`s configured by dataclasses, no file IO. Every network takes the uint8-valued frame
`[N, 1, H, W]` (uint8 or float) and scales it itself, so the exported ONNX graph needs no preprocessing.
The classifier is `backbone` + `head`, and the controller uses the same backbone architecture with a sigmoid
head, so one (e.g. heated) backbone state_dict initialises either.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from usqa.contracts.training import BackboneConfig, ControllerConfig, TrainConfig, UNetConfig


class PixelScaling(nn.Module):
    """uint8-valued pixels to the network's input range: (x / 255 - mean) / std, constants in the graph."""

    def __init__(self, mean: float, std: float) -> None:
        super().__init__()
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return (frames.float() / 255.0 - self.mean) / self.std


def _conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class BasicBlock(nn.Module):
    """The ResNet basic block: two 3x3 convolutions and a (projected) identity shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = _conv_bn_relu(c_in, c_out, stride)
        self.conv2 = nn.Sequential(nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out))
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


class ResNetBackbone(nn.Module):
    """Frame -> pooled feature vector [N, widths[-1]]; each stage halves the resolution."""

    def __init__(self, config: BackboneConfig) -> None:
        super().__init__()
        self.config = config
        self.scaling = PixelScaling(config.pixel_mean, config.pixel_std)
        self.stem = _conv_bn_relu(config.in_channels, config.widths[0], stride=2)
        if config.stem_pool:
            self.stem.append(nn.MaxPool2d(3, stride=2, padding=1))
        stages: list[nn.Module] = []
        c_in = config.widths[0]
        for i, width in enumerate(config.widths):
            blocks = [BasicBlock(c_in, width, stride=1 if i == 0 else 2)]
            blocks += [BasicBlock(width, width, 1) for _ in range(config.blocks_per_stage - 1)]
            stages.append(nn.Sequential(*blocks))
            c_in = width
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)

    @property
    def out_features(self) -> int:
        return self.config.widths[-1]

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.stages(self.stem(self.scaling(frames)))), 1)


class FrameClassifier(nn.Module):
    """The classification predictor f(x; w): backbone + linear head -> class logits [N, num_classes]."""

    def __init__(self, backbone: BackboneConfig, num_classes: int) -> None:
        super().__init__()
        self.backbone = ResNetBackbone(backbone)
        self.head = nn.Linear(self.backbone.out_features, num_classes)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(frames))


class UNet(nn.Module):
    """The segmentation predictor f(x; w): a small U-Net -> per-pixel logits [N, num_classes, H, W].

    H and W must be divisible by 2 ** (len(widths) - 1).
    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        self.scaling = PixelScaling(config.pixel_mean, config.pixel_std)
        w = config.widths
        self.down = nn.ModuleList()
        c_in = config.in_channels
        for width in w:
            self.down.append(nn.Sequential(_conv_bn_relu(c_in, width), _conv_bn_relu(width, width)))
            c_in = width
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        for deep, skip in zip(reversed(w[1:]), reversed(w[:-1]), strict=True):
            self.up.append(nn.ConvTranspose2d(deep, skip, 2, stride=2))
            self.merge.append(nn.Sequential(_conv_bn_relu(2 * skip, skip), _conv_bn_relu(skip, skip)))
        self.out = nn.Conv2d(w[0], config.num_classes, 1, bias=True)
        if config.foreground_prior is not None and self.out.bias is not None:
            # Logits (0, log(p / (1 - p))): every pixel starts at foreground probability p (RetinaNet's prior
            # init); a random bias often starts at "all foreground", where small targets take ~100 steps to leave.
            p = min(max(config.foreground_prior, 1e-4), 1 - 1e-4)
            nn.init.zeros_(self.out.bias)
            with torch.no_grad():
                self.out.bias[1] = math.log(p / (1 - p))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = self.scaling(frames)
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips[:-1]), strict=True):
            x = merge(torch.cat([up(x), skip], dim=1))
        return self.out(x)


class Controller(nn.Module):
    """The controller h(x; theta): backbone + linear head + sigmoid -> amenability score in [0, 1], shape [N]."""

    def __init__(self, config: ControllerConfig) -> None:
        super().__init__()
        self.backbone = ResNetBackbone(config.backbone)
        self.head = nn.Linear(self.backbone.out_features, 1)
        p = min(max(config.initial_score, 1e-3), 1 - 1e-3)
        nn.init.zeros_(self.head.weight)
        nn.init.constant_(self.head.bias, math.log(p / (1 - p)))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.head(self.backbone(frames))).squeeze(1)


def build_predictor(config: TrainConfig) -> nn.Module:
    if config.task == "classify":
        return FrameClassifier(config.backbone, config.num_classes)
    return UNet(config.unet)


def build_controller(config: TrainConfig) -> Controller:
    return Controller(config.controller)


@contextmanager
def seeded_init(seed: int) -> Iterator[None]:
    """A context in which network construction draws its initial weights from `seed` only."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def load_backbone(module: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Initialise `module.backbone` from a backbone state_dict (keys with or without a `backbone.` prefix).

    Returns the keys that did not fit, so the caller can say so; raises if nothing fits.
    """
    backbone = getattr(module, "backbone", None)
    if not isinstance(backbone, ResNetBackbone):
        raise ValueError(f"{type(module).__name__} has no ResNet backbone to initialise")
    stripped = {k.removeprefix("backbone."): v for k, v in state.items()}
    own = backbone.state_dict()
    fitting = {k: v for k, v in stripped.items() if k in own and own[k].shape == v.shape}
    if not fitting:
        raise ValueError("the backbone checkpoint has no tensor that fits this network's backbone")
    backbone.load_state_dict(fitting, strict=False)
    return sorted(set(own) - set(fitting))
