"""OU noise against its definition, soft update with tau, the replay buffer and one DDPG update."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from usqa.contracts.training import BackboneConfig, ConstraintConfig, ControllerConfig, DDPGConfig
from usqa.trainer.amenability.ddpg import DDPG, OrnsteinUhlenbeckNoise, ReplayBuffer, soft_update
from usqa.trainer.networks import Controller


def test_ou_noise_follows_its_definition() -> None:
    noise = OrnsteinUhlenbeckNoise(3, theta=0.15, sigma=0.2, seed=7)
    draws = np.random.default_rng(7)
    x = np.zeros(3)
    for _ in range(5):
        x = x + 0.15 * (0.0 - x) * 1.0 + 0.2 * 1.0 * draws.standard_normal(3)
        assert np.allclose(noise.sample(), x)
    noise.reset()
    assert np.all(noise.state == 0)


def test_ou_noise_reverts_to_the_mean_and_resumes_exactly() -> None:
    noise = OrnsteinUhlenbeckNoise(1, theta=0.5, sigma=0.0, seed=0, mu=1.0)
    noise.state = np.array([3.0])
    assert noise.sample().tolist() == [2.0]  # 3 + 0.5 * (1 - 3)
    a = OrnsteinUhlenbeckNoise(2, 0.15, 0.2, seed=1)
    a.sample()
    b = OrnsteinUhlenbeckNoise(2, 0.15, 0.2, seed=99)
    b.load_state_dict(a.state_dict())
    assert np.allclose(a.sample(), b.sample())


def test_soft_update_moves_the_target_by_tau() -> None:
    source, target = nn.Linear(2, 1), nn.Linear(2, 1)
    nn.init.constant_(source.weight, 1.0)
    nn.init.constant_(target.weight, 0.0)
    nn.init.constant_(source.bias, 2.0)
    nn.init.constant_(target.bias, 4.0)
    soft_update(target, source, tau=0.001)
    assert torch.allclose(target.weight, torch.full((1, 2), 0.001))
    assert target.bias.item() == pytest.approx(0.001 * 2.0 + 0.999 * 4.0)
    soft_update(target, source, tau=1.0)
    assert torch.equal(target.weight, source.weight)


def test_replay_buffer_keeps_capacity_and_samples_from_its_generator() -> None:
    buffer = ReplayBuffer(capacity=2, seed=0)
    for i in range(3):
        buffer.add(torch.tensor([i]), torch.tensor([0.5]), float(i), torch.tensor([i]), False)
    assert [item["reward"] for item in buffer.items] == [1.0, 2.0]
    other = ReplayBuffer(capacity=2, seed=5)
    other.load_state_dict(buffer.state_dict())
    assert [t["reward"] for t in buffer.sample(4)] == [t["reward"] for t in other.sample(4)]


def test_ddpg_update_trains_critic_and_moves_targets_slowly() -> None:
    torch.manual_seed(0)
    controller = Controller(ControllerConfig(backbone=BackboneConfig(widths=(4,))))
    config = DDPGConfig(critic_backbone=BackboneConfig(widths=(4,)), critic_hidden=8, updates_per_episode=3)
    learner = DDPG(controller, config, ConstraintConfig(), batch_size=4, seed=0)
    frames = torch.randint(0, 255, (8, 1, 8, 8), dtype=torch.uint8)
    target_before = copy.deepcopy(learner.target_critic.state_dict())
    learner.start_episode()
    for t in range(2):
        batch = torch.arange(4 * t, 4 * t + 4)
        behaviour = learner.act(frames[batch])
        assert behaviour.min() >= 0 and behaviour.max() <= 1
        learner.memory.batches.append(batch)
        learner.memory.behaviour.append(behaviour)
        learner.memory.actions.append(torch.bernoulli(behaviour))
        learner.memory.rewards.append(float(t))
    diagnostics = learner.update(frames)
    assert {"critic_loss", "critic_value", "constraint_penalty", "mean_score"} <= set(diagnostics)
    assert len(learner.replay.items) == 2 and learner.replay.items[-1]["done"]
    moved = max(
        (learner.target_critic.state_dict()[k] - v).abs().max().item()
        for k, v in target_before.items()
        if v.dtype.is_floating_point
    )
    assert 0 < moved < 0.01  # three soft updates with tau = 0.001
