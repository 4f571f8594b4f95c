"""The comparison augmentations of Table 2: CutMix (hard) and a RandAugment-like soft augmentation.

Both work on uint8-valued float frames [N, 1, S, S] and own a seeded `torch.Generator`. RandAugment follows
torchvision's operation list and magnitude scale (31 bins, magnitude 9 by default) without the colour
operations, which do nothing to grayscale frames; geometric operations fill with black, the scanner's
background.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

MAGNITUDE_BINS = 31


@dataclass(frozen=True)
class MixedBatch:
    """Frames with a pasted box and the two label sets: loss = lam * CE(y_a) + (1 - lam) * CE(y_b)."""

    frames: torch.Tensor
    labels_a: torch.Tensor
    labels_b: torch.Tensor
    lam: float


class CutMix:
    """Yun et al. 2019: paste a box of area ~ (1 - lam), lam ~ Beta(a, a), from a shuffled copy of the batch."""

    def __init__(self, alpha: float = 1.0, seed: int = 0) -> None:
        self.alpha = alpha
        self.generator = torch.Generator().manual_seed(seed)

    def _uniform(self) -> float:
        return float(torch.rand((), generator=self.generator))

    def __call__(self, frames: torch.Tensor, labels: torch.Tensor) -> MixedBatch:
        n, _, h, w = frames.shape
        pair = torch.tensor([self.alpha, self.alpha], dtype=torch.float64)
        lam = float(torch._sample_dirichlet(pair, generator=self.generator)[0])
        order = torch.randperm(n, generator=self.generator).to(labels.device)
        cut = math.sqrt(1.0 - lam)
        ch, cw = int(h * cut), int(w * cut)
        cy, cx = int(self._uniform() * h), int(self._uniform() * w)
        y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
        x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
        mixed = frames.float().clone()
        mixed[:, :, y0:y1, x0:x1] = frames[order][:, :, y0:y1, x0:x1].float()
        lam = 1.0 - (y1 - y0) * (x1 - x0) / (h * w)
        return MixedBatch(mixed, labels, labels[order], lam)

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])


def _affine(image: torch.Tensor, matrix: list[list[float]]) -> torch.Tensor:
    theta = torch.tensor([matrix], dtype=image.dtype, device=image.device)
    grid = F.affine_grid(theta, [1, *image.shape], align_corners=False)
    return F.grid_sample(
        image.unsqueeze(0), grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )[0]


def _blend(image: torch.Tensor, other: torch.Tensor, factor: float) -> torch.Tensor:
    return (other + factor * (image - other)).clamp(0, 255)


def _sharpness(image: torch.Tensor, factor: float) -> torch.Tensor:
    kernel = torch.tensor([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]], device=image.device) / 13
    smooth = F.conv2d(image.unsqueeze(0), kernel.view(1, 1, 3, 3), padding=1)[0]
    smooth[..., 0, :], smooth[..., -1, :] = image[..., 0, :], image[..., -1, :]
    smooth[..., :, 0], smooth[..., :, -1] = image[..., :, 0], image[..., :, -1]
    return _blend(image, smooth, factor)


def _autocontrast(image: torch.Tensor) -> torch.Tensor:
    low, high = image.amin(), image.amax()
    return image if high <= low else (image - low) * (255.0 / (high - low))


def _equalize(image: torch.Tensor) -> torch.Tensor:
    values = image.round().clamp(0, 255).long()
    hist = torch.bincount(values.flatten(), minlength=256).float()
    cdf = hist.cumsum(0)
    nonzero = hist[hist > 0]
    if nonzero.numel() <= 1:
        return image
    # PIL's lookup table: step = (N - count of the last grey) // 255, lut = (cdf_before + step // 2) // step.
    step = torch.div(hist.sum() - nonzero[-1], 255, rounding_mode="floor")
    if step == 0:
        return image
    lut = torch.div(
        torch.cat([hist.new_zeros(1), cdf[:-1]]) + torch.div(step, 2, rounding_mode="floor"),
        step,
        rounding_mode="floor",
    ).clamp(0, 255)
    return lut[values]


Operation = Callable[[torch.Tensor, float], torch.Tensor]


def _operations(size: int) -> dict[str, tuple[Operation, float, bool]]:
    """name -> (op(image, magnitude), magnitude at the top bin, signed)."""
    return {
        "identity": (lambda x, m: x, 0.0, False),
        "shear_x": (lambda x, m: _affine(x, [[1, m, 0], [0, 1, 0]]), 0.3, True),
        "shear_y": (lambda x, m: _affine(x, [[1, 0, 0], [m, 1, 0]]), 0.3, True),
        # translation in pixels -> affine_grid's normalised [-1, 1] coordinates
        "translate_x": (lambda x, m: _affine(x, [[1, 0, -2 * m / size], [0, 1, 0]]), 150 / 331 * size, True),
        "translate_y": (lambda x, m: _affine(x, [[1, 0, 0], [0, 1, -2 * m / size]]), 150 / 331 * size, True),
        "rotate": (
            lambda x, m: _affine(
                x,
                [
                    [math.cos(math.radians(m)), -math.sin(math.radians(m)), 0],
                    [math.sin(math.radians(m)), math.cos(math.radians(m)), 0],
                ],
            ),
            30.0,
            True,
        ),
        "brightness": (lambda x, m: _blend(x, torch.zeros_like(x), 1 + m), 0.9, True),
        "contrast": (lambda x, m: _blend(x, x.mean().expand_as(x), 1 + m), 0.9, True),
        "sharpness": (lambda x, m: _sharpness(x, 1 + m), 0.9, True),
        "posterize": (
            lambda x, m: (
                torch.div(x.round().clamp(0, 255), 2 ** (8 - int(m)), rounding_mode="floor")
                * 2 ** (8 - int(m))
            ),
            4.0,
            False,
        ),
        "solarize": (lambda x, m: torch.where(x >= m, 255 - x, x), 255.0, False),
        "autocontrast": (lambda x, m: _autocontrast(x), 0.0, False),
        "equalize": (lambda x, m: _equalize(x), 0.0, False),
    }


class RandAugment:
    """Cubuk et al. 2020 as in torchvision: per frame, `ops` operations drawn uniformly, fixed magnitude."""

    def __init__(self, ops: int = 2, magnitude: int = 9, size: int = 128, seed: int = 0) -> None:
        if not 0 <= magnitude < MAGNITUDE_BINS:
            raise ValueError(f"magnitude must be in [0, {MAGNITUDE_BINS - 1}], got {magnitude}")
        self.ops, self.magnitude = ops, magnitude
        self.operations = _operations(size)
        self.names = list(self.operations)
        self.generator = torch.Generator().manual_seed(seed)

    def _magnitude(self, name: str) -> float:
        _, top, _ = self.operations[name]
        fraction = self.magnitude / (MAGNITUDE_BINS - 1)
        if name == "posterize":  # bits removed: 8 - round(4 * fraction) bits kept
            return 8 - round(top * fraction)
        if name == "solarize":  # threshold falls from 255 to 0
            return top * (1 - fraction)
        return top * fraction

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        out = frames.float().clone()
        for i in range(out.shape[0]):
            picks = torch.randint(len(self.names), (self.ops,), generator=self.generator).tolist()
            signs = torch.randint(2, (self.ops,), generator=self.generator).tolist()
            for pick, sign in zip(picks, signs, strict=True):
                name = self.names[pick]
                op, _, signed = self.operations[name]
                m = self._magnitude(name)
                out[i] = op(out[i], -m if signed and sign else m).clamp(0, 255)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
