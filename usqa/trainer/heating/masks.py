"""The noise-mask pipeline of seed 000 (eqs. 4, 5, 7, 9): sample a G x G noise matrix, score it, upsample, blur,
multiply into the frame.

`NoiseMaskSampler` owns its `torch.Generator` (MONAI `Randomizable` style), so a mask is exact for a seed and
the global RNG is never touched. The policy's log-parameters arrive already mixed and exponentiated
(eqs. 10-11 and 3, in `usqa.trainer.heating.policy`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from usqa.trainer.heating.config import MaskConfig

# Beta draws are kept inside the open interval, where the log-density is finite.
NOISE_EPS = 1e-6
SQRT3 = math.sqrt(3.0)


def beta_log_prob(noise: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """log f(x; alpha, beta) of the Beta density, elementwise."""
    # eq. 9: f = Gamma(a + b) / (Gamma(a) Gamma(b)) x^(a-1) (1-x)^(b-1)
    log_norm = torch.lgamma(alpha + beta) - torch.lgamma(alpha) - torch.lgamma(beta)
    return log_norm + (alpha - 1) * torch.log(noise) + (beta - 1) * torch.log1p(-noise)


def beta_moments(alpha: torch.Tensor, beta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation of Beta(alpha, beta)."""
    total = alpha + beta
    mean = alpha / total
    std = torch.sqrt(alpha * beta / (total.square() * (total + 1)))
    return mean, std


def normal_log_prob(noise: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return -0.5 * ((noise - mean) / std).square() - torch.log(std) - 0.5 * math.log(2 * math.pi)


@dataclass(frozen=True)
class NoiseDraw:
    """One mini-batch of noise: the raw draw M [N, G*G], its log-probability [N, G*G] (eq. 7), the mask
    [N, 1, S, S] after clipping, upsampling and blurring."""

    noise: torch.Tensor
    log_prob: torch.Tensor
    mask: torch.Tensor


def gaussian_kernel1d(kernel_size: int, sigma: float) -> torch.Tensor:
    """The normalised 1-D Gaussian of `kernel_size` taps (torchvision's `gaussian_blur` kernel)."""
    half = (kernel_size - 1) * 0.5
    x = torch.linspace(-half, half, kernel_size, dtype=torch.float64)
    pdf = torch.exp(-0.5 * (x / sigma).square())
    return (pdf / pdf.sum()).float()


def gaussian_blur(images: torch.Tensor, kernel_size: int, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of [N, 1, H, W] with reflect padding; identity for kernel_size <= 1."""
    if kernel_size <= 1:
        return images
    if kernel_size % 2 == 0:
        raise ValueError(f"blur kernel size must be odd, got {kernel_size}")
    kernel = gaussian_kernel1d(kernel_size, sigma).to(images.device, images.dtype)
    pad = kernel_size // 2
    x = F.pad(images, (pad, pad, pad, pad), mode="reflect")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1))
    return F.conv2d(x, kernel.view(1, 1, -1, 1))


def upsample_noise(noise: torch.Tensor, grid: int, size: int, mode: str = "nearest") -> torch.Tensor:
    """[N, G*G] -> [N, 1, size, size]: reshape to the grid, then interpolate to the frame (none if G == size)."""
    matrix = noise.reshape(-1, 1, grid, grid)
    if grid == size:
        return matrix
    if mode == "nearest":
        return F.interpolate(matrix, size=(size, size), mode="nearest")
    return F.interpolate(matrix, size=(size, size), mode="bilinear", align_corners=False)


def apply_mask(
    frames: torch.Tensor, mask: torch.Tensor, space: str = "pixels", pixel_mean: float = 0.5
) -> torch.Tensor:
    """The frame the classifier sees: float, uint8-valued scale, [N, 1, S, S]."""
    frames = frames.float()
    if space == "pixels":
        return frames * mask  # eq. 5: I_pre * M
    # ((x/255 - m)/s) * M is, before the network's own scaling, x' = 255 m + (x - 255 m) * M.
    centre = 255.0 * pixel_mean
    return centre + (frames - centre) * mask


class NoiseMaskSampler:
    """Draws noise masks from the policy's per-cell parameters with its own seeded generator."""

    def __init__(
        self, config: MaskConfig, frame_size: int, seed: int, device: str | torch.device = "cpu"
    ) -> None:
        if config.grid > frame_size:
            raise ValueError(f"noise grid {config.grid} is larger than the frame ({frame_size} px)")
        self.config, self.frame_size = config, frame_size
        self.generator = torch.Generator(device=device)
        self.set_random_state(seed)

    def set_random_state(self, seed: int) -> NoiseMaskSampler:
        self.generator.manual_seed(seed)
        return self

    def draw_noise(self, alpha: torch.Tensor, beta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The raw noise matrix (no gradient) and its log-probability (differentiable in alpha, beta)."""
        kind = self.config.noise
        with torch.no_grad():
            if kind == "beta":
                # eq. 4: M ~ Beta(alpha', beta'); the same draw as torch.distributions.Beta.sample for one seed.
                pair = torch.stack([alpha.detach(), beta.detach()], dim=-1)
                noise = torch._sample_dirichlet(pair, generator=self.generator)[..., 0]
                noise = noise.clamp(NOISE_EPS, 1 - NOISE_EPS)
            else:
                mean, std = beta_moments(alpha.detach(), beta.detach())
                if kind == "gaussian":
                    eps = torch.randn(mean.shape, generator=self.generator, device=mean.device)
                    noise = mean + std * eps
                else:
                    u = torch.rand(mean.shape, generator=self.generator, device=mean.device)
                    noise = mean + SQRT3 * std * (2 * u - 1)
        # eq. 7: log P = B.logP(M), elementwise per cell.
        if kind == "beta":
            log_prob = beta_log_prob(noise, alpha, beta)
        else:
            mean, std = beta_moments(alpha, beta)
            if kind == "gaussian":
                log_prob = normal_log_prob(noise, mean, std)
            else:
                log_prob = -torch.log(2 * SQRT3 * std)
        return noise, log_prob

    def masks_from_noise(self, noise: torch.Tensor) -> torch.Tensor:
        """Clip into [0, 1], upsample to the frame, blur: the multiplicative mask [N, 1, S, S]."""
        c = self.config
        mask = upsample_noise(noise.clamp(0.0, 1.0), c.grid, self.frame_size, c.upsample)
        return gaussian_blur(mask, c.blur_kernel, c.blur_sigma)

    def __call__(self, alpha: torch.Tensor, beta: torch.Tensor) -> NoiseDraw:
        noise, log_prob = self.draw_noise(alpha, beta)
        return NoiseDraw(noise=noise, log_prob=log_prob, mask=self.masks_from_noise(noise))

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
