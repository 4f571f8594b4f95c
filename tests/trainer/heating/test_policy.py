from __future__ import annotations

import torch

from usqa.contracts.training import BackboneConfig
from usqa.trainer.heating.config import PolicyConfig
from usqa.trainer.heating.policy import NoisePolicy
from usqa.trainer.networks import seeded_init

CONFIG = PolicyConfig(
    backbone=BackboneConfig(widths=(4, 4, 8, 8)), hidden_layers=1, tau_image=0.9, tau_dataset=0.99
)


def _policy(config: PolicyConfig = CONFIG, grid: int = 4) -> NoisePolicy:
    with seeded_init(0):
        return NoisePolicy(config, grid)


def _frames(n: int = 3) -> torch.Tensor:
    return torch.randint(0, 256, (n, 1, 32, 32), generator=torch.Generator().manual_seed(1)).float()


def test_shapes_and_eqs_3_10_11() -> None:
    policy = _policy()
    d_alpha, d_beta = policy.dataset_alpha.clone(), policy.dataset_beta.clone()
    out = policy(_frames())
    for tensor in (out.alpha_image, out.beta_image, out.alpha, out.beta):
        assert tensor.shape == (3, 16)
    assert torch.allclose(out.alpha_mixed, 0.9 * d_alpha + 0.1 * out.alpha_image)
    assert torch.allclose(out.beta_mixed, 0.9 * d_beta + 0.1 * out.beta_image)
    assert torch.allclose(out.alpha, torch.exp(out.alpha_mixed))
    assert torch.allclose(out.beta, torch.exp(out.beta_mixed))
    assert bool((out.alpha > 0).all()) and bool((out.beta > 0).all())


def test_dataset_level_ema_moves_in_training_only_eqs_12_13() -> None:
    policy = _policy()
    d_alpha, d_beta = policy.dataset_alpha.clone(), policy.dataset_beta.clone()
    out = policy(_frames())
    expected_alpha = 0.99 * d_alpha + 0.01 * out.alpha_image.detach().mean(0)
    expected_beta = 0.99 * d_beta + 0.01 * out.beta_image.detach().mean(0)
    assert torch.allclose(policy.dataset_alpha, expected_alpha)
    assert torch.allclose(policy.dataset_beta, expected_beta)
    policy.eval()
    frozen = policy.dataset_alpha.clone()
    policy(_frames())
    assert torch.equal(policy.dataset_alpha, frozen)


def test_dataset_parameters_are_state_not_trained_and_start_random_normal() -> None:
    policy = _policy(grid=32)
    state = policy.state_dict()
    assert "dataset_alpha" in state and "dataset_beta" in state
    names = {name for name, _ in policy.named_parameters()}
    assert "dataset_alpha" not in names
    values = policy.dataset_alpha
    assert abs(float(values.mean())) < 0.15 and abs(float(values.std()) - 1.0) < 0.15
    out = policy(_frames())
    out.alpha.sum().backward()
    assert policy.alpha_head[-1].weight.grad is not None
    assert policy.features.stem[0].weight.grad is not None


def test_a_seed_builds_the_same_policy() -> None:
    a, b = _policy(), _policy()
    for (key, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), key
