"""The policy network of seed 000 (eqs. 2, 3, 10-13): a light ResNet-10-style feature extractor g, a projection h
to per-cell Beta log-parameters, and the dataset-level parameters mixed in by exponential moving averages.

A pure `nn.Module`. The dataset-level parameters are buffers (they are state, not trained by the optimiser),
so they are in `state_dict()` and in every heating checkpoint, and survive `--resume`. Like BatchNorm's
running statistics they move only in training mode. The policy is never exported or served.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from usqa.trainer.heating.config import PolicyConfig
from usqa.trainer.networks import ResNetBackbone


@dataclass(frozen=True)
class PolicyOutput:
    """Per-cell parameters [N, G*G]: the image-level (log-)parameters from h, the mixed ones (eqs. 10-11), and
    the exponentiated Beta parameters alpha', beta' (eq. 3)."""

    alpha_image: torch.Tensor
    beta_image: torch.Tensor
    alpha_mixed: torch.Tensor
    beta_mixed: torch.Tensor
    alpha: torch.Tensor
    beta: torch.Tensor


def _projection(features: int, outputs: int, hidden_layers: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(hidden_layers):
        layers += [nn.Linear(features, features), nn.BatchNorm1d(features), nn.ReLU(inplace=True)]
    layers.append(nn.Linear(features, outputs))
    return nn.Sequential(*layers)


def ema(average: torch.Tensor, value: torch.Tensor, tau: float) -> torch.Tensor:
    """tau * average + (1 - tau) * value (eqs. 10-13 share this form)."""
    return tau * average + (1 - tau) * value


class NoisePolicy(nn.Module):
    """Frame [N, 1, S, S] (uint8-valued) -> per-cell Beta parameters for a G x G noise matrix."""

    dataset_alpha: torch.Tensor
    dataset_beta: torch.Tensor

    def __init__(self, config: PolicyConfig, grid: int) -> None:
        super().__init__()
        self.config, self.grid = config, grid
        self.features = ResNetBackbone(config.backbone)  # g
        cells = grid * grid
        n = self.features.out_features
        # h: projects the feature vector to b1(x) and b2(x), one value per grid cell each (Figure 4).
        self.alpha_head = _projection(n, cells, config.hidden_layers)
        self.beta_head = _projection(n, cells, config.hidden_layers)
        # Dataset-level log-parameters, random normal at the start (section 3).
        self.register_buffer("dataset_alpha", torch.randn(cells) * config.dataset_init_std)
        self.register_buffer("dataset_beta", torch.randn(cells) * config.dataset_init_std)

    def forward(self, frames: torch.Tensor) -> PolicyOutput:
        features = self.features(frames)
        # eq. 2: image-level parameters from the frame.
        alpha_image, beta_image = self.alpha_head(features), self.beta_head(features)
        tau_i, tau_d = self.config.tau_image, self.config.tau_dataset
        alpha_mixed = ema(self.dataset_alpha, alpha_image, tau_i)  # eq. 10
        beta_mixed = ema(self.dataset_beta, beta_image, tau_i)  # eq. 11
        if self.training:
            with torch.no_grad():
                self.dataset_alpha.copy_(ema(self.dataset_alpha, alpha_image.mean(0), tau_d))  # eq. 12
                self.dataset_beta.copy_(ema(self.dataset_beta, beta_image.mean(0), tau_d))  # eq. 13
        return PolicyOutput(
            alpha_image=alpha_image,
            beta_image=beta_image,
            alpha_mixed=alpha_mixed,
            beta_mixed=beta_mixed,
            alpha=torch.exp(alpha_mixed),  # eq. 3
            beta=torch.exp(beta_mixed),  # eq. 3
        )

    def dataset_parameters(self) -> tuple[torch.Tensor, torch.Tensor]:
        """exp of the dataset-level parameters: the Beta of a frame-independent mask (eq. 3 on eqs. 12-13)."""
        return torch.exp(self.dataset_alpha), torch.exp(self.dataset_beta)
