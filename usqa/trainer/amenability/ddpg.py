"""DDPG for the controller (section 2.2), mapped onto Algorithm 1's episodes.

The mapping: the state s_t is the mini-batch B_t (the predictor is part of the environment and its progress is
taken out of the reward by the baseline Rbar_t); the deterministic actor mu(s_t) is the controller's score
vector {h(x_i)}; the behaviour action is mu + OU noise, clipped to [0, 1], and it is still a sampling
probability: frames are selected by a_i ~ Bernoulli(score_i) as in Algorithm 1. The critic is factorised over
frames, Q(s_t, a_t) = mean_i q(x_i, a_i), so one batch-level reward trains a per-frame critic (the credit for
R_t is shared by the frames of B_t) and the actor gets a per-frame gradient dq/da at a = h(x_i) (eq. 6).
The critic minimises the TD error of eq. 7 against target copies updated with tau; transitions are kept in
a replay buffer and the networks are updated once per episode, after its T steps.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import nn

from usqa.contracts.training import BackboneConfig, ConstraintConfig, DDPGConfig
from usqa.trainer.amenability.reinforce import EpisodeMemory
from usqa.trainer.amenability.rewards import constraint_penalty, selection_probabilities
from usqa.trainer.networks import Controller, ResNetBackbone


class OrnsteinUhlenbeckNoise:
    """x_{k+1} = x_k + theta (mu - x_k) dt + sigma sqrt(dt) N(0, 1), per dimension, from its own generator."""

    def __init__(
        self, size: int, theta: float, sigma: float, seed: int, mu: float = 0.0, dt: float = 1.0
    ) -> None:
        self.size, self.theta, self.sigma, self.mu, self.dt = size, theta, sigma, mu, dt
        self.generator = np.random.default_rng(seed)
        self.state = np.full(size, mu, np.float64)

    def reset(self) -> None:
        self.state = np.full(self.size, self.mu, np.float64)

    def sample(self) -> np.ndarray:
        drift = self.theta * (self.mu - self.state) * self.dt
        diffusion = self.sigma * np.sqrt(self.dt) * self.generator.standard_normal(self.size)
        self.state = self.state + drift + diffusion
        return self.state.copy()

    def state_dict(self) -> dict[str, Any]:
        return {"state": self.state.copy(), "generator": self.generator.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.state = np.asarray(state["state"], np.float64).copy()
        self.generator.bit_generator.state = state["generator"]


@torch.no_grad()
def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """theta' <- tau * theta + (1 - tau) * theta' for every parameter and float buffer (section 2.2)."""
    for t, s in zip(target.state_dict().values(), source.state_dict().values(), strict=True):
        if t.dtype.is_floating_point:
            t.mul_(1 - tau).add_(s, alpha=tau)
        else:
            t.copy_(s)


class FrameCritic(nn.Module):
    """q(x, a): the per-frame critic, a small backbone for the frame and an MLP on [features, score]."""

    def __init__(self, backbone: BackboneConfig, hidden: int) -> None:
        super().__init__()
        self.backbone = ResNetBackbone(backbone)
        self.head = nn.Sequential(
            nn.Linear(self.backbone.out_features + 1, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 1)
        )

    def forward(self, frames: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        features = self.backbone(frames)
        return self.head(torch.cat([features, scores.unsqueeze(1)], dim=1)).squeeze(1)


class ReplayBuffer:
    """Transitions (B_t, behaviour scores, R_t, B_{t+1}, done) as frame indices, sampled with its own generator."""

    def __init__(self, capacity: int, seed: int) -> None:
        self.capacity = capacity
        self.items: list[dict[str, Any]] = []
        self.generator = torch.Generator().manual_seed(seed)

    def add(
        self, batch: torch.Tensor, scores: torch.Tensor, reward: float, following: torch.Tensor, done: bool
    ) -> None:
        self.items.append(
            {"batch": batch, "scores": scores, "reward": reward, "next": following, "done": done}
        )
        if len(self.items) > self.capacity:
            self.items.pop(0)

    def sample(self, n: int) -> list[dict[str, Any]]:
        picks = torch.randint(len(self.items), (min(n, len(self.items)),), generator=self.generator)
        return [self.items[int(i)] for i in picks]

    def state_dict(self) -> dict[str, Any]:
        return {"items": list(self.items), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.items = list(state["items"])
        self.generator.set_state(state["generator"])


class DDPG:
    """Actor (the controller) and critic updated once per episode from replayed transitions."""

    def __init__(
        self,
        controller: Controller,
        config: DDPGConfig,
        constraint: ConstraintConfig,
        batch_size: int,
        seed: int,
    ) -> None:
        self.controller, self.config, self.constraint = controller, config, constraint
        self.critic = FrameCritic(config.critic_backbone, config.critic_hidden)
        self.target_controller = copy.deepcopy(controller).requires_grad_(False)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_optimiser = torch.optim.Adam(controller.parameters(), lr=config.actor_learning_rate)
        self.critic_optimiser = torch.optim.Adam(self.critic.parameters(), lr=config.critic_learning_rate)
        self.noise = OrnsteinUhlenbeckNoise(batch_size, config.ou_theta, config.ou_sigma, seed=seed)
        self.replay = ReplayBuffer(config.replay_capacity, seed=seed + 1)
        self.memory = EpisodeMemory()

    def start_episode(self) -> None:
        self.memory.clear()
        self.noise.reset()

    @torch.no_grad()
    def act(self, frames: torch.Tensor) -> torch.Tensor:
        self.controller.train()
        scores = self.controller(frames)
        noise = torch.from_numpy(self.noise.sample()[: scores.numel()]).float().to(scores.device)
        return (scores + noise).clamp(0.0, 1.0)

    def _probabilities(self, scores: torch.Tensor, sizes: list[int]) -> torch.Tensor:
        """Selection probabilities per stored mini-batch: the critic's action is what the engine sampled from."""
        c = self.constraint
        return torch.cat([selection_probabilities(h, c.mode, c.min_mean_score) for h in scores.split(sizes)])

    def _collect(self) -> None:
        m = self.memory
        for t, batch in enumerate(m.batches):
            last = t == len(m.batches) - 1
            self.replay.add(batch, m.behaviour[t], m.rewards[t], batch if last else m.batches[t + 1], last)

    def update(self, train_frames: torch.Tensor) -> dict[str, float]:
        self._collect()
        if not self.replay.items:
            return {}
        gamma = self.config.discount
        critic_losses, actor_values, penalties, means = [], [], [], []
        for _ in range(self.config.updates_per_episode):
            transitions = self.replay.sample(self.config.transitions_per_update)
            frames = torch.cat([train_frames[tr["batch"]] for tr in transitions])
            device = frames.device
            scores = torch.cat([tr["scores"] for tr in transitions]).to(device)
            sizes = [tr["batch"].numel() for tr in transitions]
            rewards = torch.tensor([tr["reward"] for tr in transitions], device=device)
            done = torch.tensor([float(tr["done"]) for tr in transitions], device=device)
            with torch.no_grad():
                following = torch.cat([train_frames[tr["next"]] for tr in transitions])
                self.target_controller.eval()
                self.target_critic.eval()
                next_sizes = [tr["next"].numel() for tr in transitions]
                q_next = self.target_critic(
                    following, self._probabilities(self.target_controller(following), next_sizes)
                )
                q_next_batch = torch.stack([q.mean() for q in q_next.split(next_sizes)])
                target = (
                    rewards + gamma * (1 - done) * q_next_batch
                )  # eq. 7: R_t + gamma Q'(s_{t+1}, mu'(s_{t+1}))
            self.critic.train()
            q = self.critic(frames, scores)
            q_batch = torch.stack([v.mean() for v in q.split(sizes)])
            critic_loss = torch.mean((target - q_batch) ** 2)
            self.critic_optimiser.zero_grad(set_to_none=True)
            critic_loss.backward()
            self.critic_optimiser.step()

            # Actor: ascend dq/da at a = mu(x) (eq. 6), under the E[h] >= c penalty (eq. 3).
            self.controller.train()
            self.critic.eval()
            actor_scores = self.controller(frames)
            value = self.critic(frames, self._probabilities(actor_scores, sizes)).mean()
            penalty = constraint_penalty(
                actor_scores, self.constraint.min_mean_score, self.constraint.penalty
            )
            actor_loss = -value + penalty
            self.actor_optimiser.zero_grad(set_to_none=True)
            actor_loss.backward()
            self.actor_optimiser.step()
            soft_update(self.target_critic, self.critic, self.config.tau)
            soft_update(self.target_controller, self.controller, self.config.tau)
            critic_losses.append(critic_loss.item())
            actor_values.append(value.item())
            penalties.append(penalty.item())
            means.append(actor_scores.mean().item())
        return {
            "critic_loss": float(np.mean(critic_losses)),
            "critic_value": float(np.mean(actor_values)),
            "constraint_penalty": float(np.mean(penalties)),
            "mean_score": float(np.mean(means)),
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "controller": self.controller.state_dict(),
            "critic": self.critic.state_dict(),
            "target_controller": self.target_controller.state_dict(),
            "target_critic": self.target_critic.state_dict(),
            "actor_optimiser": self.actor_optimiser.state_dict(),
            "critic_optimiser": self.critic_optimiser.state_dict(),
            "noise": self.noise.state_dict(),
            "replay": self.replay.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.controller.load_state_dict(state["controller"])
        self.critic.load_state_dict(state["critic"])
        self.target_controller.load_state_dict(state["target_controller"])
        self.target_critic.load_state_dict(state["target_critic"])
        self.actor_optimiser.load_state_dict(state["actor_optimiser"])
        self.critic_optimiser.load_state_dict(state["critic_optimiser"])
        self.noise.load_state_dict(state["noise"])
        self.replay.load_state_dict(state["replay"])
