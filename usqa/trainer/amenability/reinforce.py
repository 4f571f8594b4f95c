"""REINFORCE for the controller (section 2.2), and the interface both controller learners share.

The engine (Algorithm 1) asks a learner for selection probabilities of each training mini-batch (`act`), tells
it the sampled actions and the clipped reward (`record`), and lets it update the controller once per episode
(`update`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from usqa.contracts.training import ConstraintConfig, ReinforceConfig
from usqa.trainer.amenability.rewards import constraint_penalty, selection_probabilities
from usqa.trainer.networks import Controller

LOG_EPS = 1e-6


def bernoulli_log_likelihood(scores: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """log pi(a_t | s_t) = sum_i a_i log h_i + (1 - a_i) log(1 - h_i) over the mini-batch (last dim).

    Eq. 8 as printed, sum_i h_i a_i + (1 - h_i (1 - a_i)), is garbled (it is no log-probability: it lacks the
    logs and misplaces a bracket); this is the Bernoulli log-likelihood the selection a_i ~ Bernoulli(h_i)
    actually has.
    """
    h = scores.clamp(LOG_EPS, 1 - LOG_EPS)
    return (actions * torch.log(h) + (1 - actions) * torch.log1p(-h)).sum(dim=-1)


def returns_to_go(advantages: torch.Tensor, discount: float) -> torch.Tensor:
    """G_t = sum_k discount^k A_{t+k} over one episode's per-step clipped rewards A_t."""
    returns = torch.zeros_like(advantages)
    running = torch.zeros((), dtype=advantages.dtype)
    for t in range(advantages.numel() - 1, -1, -1):
        running = advantages[t] + discount * running
        returns[t] = running
    return returns


@dataclass
class EpisodeMemory:
    """The episode {B_t, a_t, R_t} of Algorithm 1: batch indices, behaviour scores, actions, clipped rewards."""

    batches: list[torch.Tensor] = field(default_factory=list)
    behaviour: list[torch.Tensor] = field(default_factory=list)
    actions: list[torch.Tensor] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)

    def clear(self) -> None:
        self.batches.clear()
        self.behaviour.clear()
        self.actions.clear()
        self.rewards.clear()


class ControllerLearner(Protocol):
    controller: Controller
    memory: EpisodeMemory

    def act(self, frames: torch.Tensor) -> torch.Tensor:
        """Selection probabilities for a training mini-batch (the behaviour policy)."""
        ...

    def start_episode(self) -> None: ...

    def update(self, train_frames: torch.Tensor) -> dict[str, float]:
        """Update the controller from the collected episode; return scalar diagnostics."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class Reinforce:
    """The policy gradient -E[(R_t - Rbar_t) grad log pi(a_t | s_t)] plus the constraint penalty, per episode."""

    def __init__(self, controller: Controller, config: ReinforceConfig, constraint: ConstraintConfig) -> None:
        self.controller, self.config, self.constraint = controller, config, constraint
        self.optimiser = torch.optim.Adam(controller.parameters(), lr=config.learning_rate)
        self.memory = EpisodeMemory()

    def start_episode(self) -> None:
        self.memory.clear()

    @torch.no_grad()
    def act(self, frames: torch.Tensor) -> torch.Tensor:
        self.controller.train()
        return self.controller(frames)

    def update(self, train_frames: torch.Tensor) -> dict[str, float]:
        memory = self.memory
        if not memory.batches:
            return {}
        self.controller.train()
        device = train_frames.device
        returns = returns_to_go(torch.tensor(memory.rewards), self.config.discount).to(device)
        scores = [self.controller(train_frames[batch]) for batch in memory.batches]
        c = self.constraint
        probabilities = [selection_probabilities(h, c.mode, c.min_mean_score) for h in scores]
        log_likelihood = torch.stack(
            [
                bernoulli_log_likelihood(p, a.to(device)) / a.numel()
                for p, a in zip(probabilities, memory.actions, strict=True)
            ]
        )
        policy_loss = -(returns * log_likelihood).mean()
        all_scores = torch.cat(scores)
        penalty = constraint_penalty(all_scores, self.constraint.min_mean_score, self.constraint.penalty)
        loss = policy_loss + penalty
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        self.optimiser.step()
        return {
            "policy_loss": policy_loss.item(),
            "constraint_penalty": penalty.item(),
            "mean_score": all_scores.mean().item(),
        }

    def state_dict(self) -> dict[str, Any]:
        return {"controller": self.controller.state_dict(), "optimiser": self.optimiser.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.controller.load_state_dict(state["controller"])
        self.optimiser.load_state_dict(state["optimiser"])
