"""algo "credit": a controller learner with per-frame credit from R_w and PPO-clipped policy updates.

R_w = sum_j h_j m_j / sum_j h_j on the reward frames (section 2.3, definition 2) depends on the controller
twice: through the training frames it selects (the path REINFORCE estimates from one scalar per step) and
through the weights h_j it gives the reward frames. The second path has an exact per-frame derivative,
dR_w/dh_j = (m_j - R_w) / sum_k h_k, so each reward frame gets its own advantage instead of sharing one
scalar: frames the predictor does better on than the weighted mean are scored up, worse ones down. It needs the
task labels of the validation frames only, never amenability labels, like R_w itself.

The first path keeps the policy gradient of eq. 8 with the episode's clipped rewards, made PPO-style so that
one episode can give several controller updates: per-frame ratios pi_new(a_i) / pi_behaviour(a_i), clipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch

from usqa.contracts.training import ConstraintConfig, CreditConfig
from usqa.trainer.amenability.reinforce import LOG_EPS, EpisodeMemory
from usqa.trainer.amenability.rewards import (
    constraint_penalty,
    frame_accuracy,
    frame_dice,
    selection_probabilities,
)
from usqa.trainer.networks import Controller

ADVANTAGE_EPS = 1e-6


def soft_frame_metric(task: str, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """A smooth per-frame metric for credit: probability of the true class, or soft foreground Dice."""
    probabilities = torch.softmax(logits.float(), dim=1)
    if task == "classify":
        return probabilities.gather(1, targets.long().unsqueeze(1)).squeeze(1)
    foreground = probabilities[:, 1].flatten(1)
    truth = (targets == 1).flatten(1).float()
    return (2 * (foreground * truth).sum(1) + 1) / (foreground.sum(1) + truth.sum(1) + 1)


def credit_metric(kind: str, task: str, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The per-frame metric m_j the credit uses: "soft" (smooth) or "hard" (the reported accuracy/Dice)."""
    if kind == "soft":
        return soft_frame_metric(task, logits, targets)
    return frame_accuracy(logits, targets) if task == "classify" else frame_dice(logits, targets)


def frame_advantages(metric: torch.Tensor, scores: torch.Tensor, kind: str = "exact") -> torch.Tensor:
    """Per-frame advantage of each reward frame under R_w, in the direction of dR_w/dh_j.

    "exact": m_j - R_w (the derivative times sum h). "leave_one_out": m_j - R_w^(-j), R_w without frame j, so a
    frame is not compared with a mean it is part of.
    """
    weights = scores.detach().float().clamp_min(0)
    metric = metric.detach().float()
    total, weighted = weights.sum(), (weights * metric).sum()
    if kind == "exact":
        return metric - weighted / total.clamp_min(ADVANTAGE_EPS)
    if kind == "leave_one_out":
        rest = (total - weights).clamp_min(ADVANTAGE_EPS)
        return metric - (weighted - weights * metric) / rest
    raise ValueError(f"unknown credit advantage {kind!r}")


def clipped_policy_objective(
    probabilities: torch.Tensor,
    behaviour: torch.Tensor,
    actions: torch.Tensor,
    advantage: torch.Tensor,
    clip: float,
) -> torch.Tensor:
    """PPO's min(r A, clip(r, 1 - eps, 1 + eps) A), mean over frames, r_i = pi(a_i) / pi_behaviour(a_i).

    The selection factorises over frames (a_i ~ Bernoulli(p_i)), so each frame's decision is its own action
    with the step's advantage; at r = 1 the gradient is REINFORCE's A * grad mean_i log pi(a_i) (eq. 8).
    """
    p = probabilities.clamp(LOG_EPS, 1 - LOG_EPS)
    b = behaviour.clamp(LOG_EPS, 1 - LOG_EPS)
    log_new = actions * torch.log(p) + (1 - actions) * torch.log1p(-p)
    log_old = actions * torch.log(b) + (1 - actions) * torch.log1p(-b)
    ratio = torch.exp(log_new - log_old)
    surrogate = torch.minimum(ratio * advantage, ratio.clamp(1 - clip, 1 + clip) * advantage)
    return surrogate.mean()


@runtime_checkable
class RewardObserver(Protocol):
    """A learner that wants each step's reward frames and predictor outputs (the engine's one extra hook)."""

    def observe_reward(self, frames: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> None: ...


@dataclass
class RewardMemory:
    """Each step's reward frames (uint8, CPU) and their credit metric m_j under that step's predictor."""

    frames: list[torch.Tensor] = field(default_factory=list)
    credit: list[torch.Tensor] = field(default_factory=list)

    def clear(self) -> None:
        self.frames.clear()
        self.credit.clear()


class CreditLearner:
    """Per-frame R_w credit on the reward frames plus a PPO-clipped selection term, several updates an episode."""

    def __init__(
        self, controller: Controller, config: CreditConfig, constraint: ConstraintConfig, task: str
    ) -> None:
        self.controller, self.config, self.constraint, self.task = controller, config, constraint, task
        self.optimiser = torch.optim.Adam(controller.parameters(), lr=config.learning_rate)
        self.memory = EpisodeMemory()
        self.observed = RewardMemory()

    def start_episode(self) -> None:
        self.memory.clear()
        self.observed.clear()

    @torch.no_grad()
    def act(self, frames: torch.Tensor) -> torch.Tensor:
        self.controller.train()
        return self.controller(frames)

    def observe_reward(self, frames: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> None:
        """The engine's hook after each step's reward: keep the reward frames and their credit metric m_j."""
        self.observed.frames.append(frames)
        self.observed.credit.append(credit_metric(self.config.metric, self.task, logits, targets).cpu())

    def _credit_loss(self, device: torch.device) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """-mean_j A_j h_j / std(A) over each step's reward frames: ascends R_w through h (eq. 2)."""
        # With a fixed reward set every step holds the same frames: score them once per update.
        scored: dict[int, torch.Tensor] = {}
        losses, scores = [], []
        for frames, metric in zip(self.observed.frames, self.observed.credit, strict=True):
            key = frames.data_ptr()
            if key not in scored:
                scored[key] = self.controller(frames.to(device))
                scores.append(scored[key])
            h = scored[key]
            advantage = frame_advantages(metric.to(device), h, self.config.advantage)
            # Normalised per step: the direction of dR_w/dh is kept, its scale (1 / sum h, metric spread) is not.
            advantage = advantage / (advantage.std() + ADVANTAGE_EPS) if advantage.numel() > 1 else advantage
            losses.append(-(advantage * h).mean())
        if not losses or self.config.frame_weight == 0:
            return torch.zeros((), device=device), scores
        return torch.stack(losses).mean(), scores

    def _policy_loss(self, train_frames: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """-clipped surrogate of the selection path, one advantage (the clipped reward R_t) per step."""
        memory, c, device = self.memory, self.constraint, train_frames.device
        if not memory.batches or self.config.policy_weight == 0:
            return torch.zeros((), device=device), []
        scores = [self.controller(train_frames[batch]) for batch in memory.batches]
        objectives = [
            clipped_policy_objective(
                selection_probabilities(h, c.mode, c.min_mean_score),
                behaviour.to(device),
                actions.to(device),
                torch.tensor(reward, device=device),
                self.config.clip_ratio,
            )
            for h, behaviour, actions, reward in zip(
                scores, memory.behaviour, memory.actions, memory.rewards, strict=True
            )
        ]
        return -torch.stack(objectives).mean(), scores

    def update(self, train_frames: torch.Tensor) -> dict[str, float]:
        if not self.memory.batches and not self.observed.frames:
            return {}
        self.controller.train()
        device = train_frames.device
        diagnostics: dict[str, float] = {}
        for _ in range(max(1, self.config.updates_per_episode)):
            credit_loss, reward_scores = self._credit_loss(device)
            policy_loss, train_scores = self._policy_loss(train_frames)
            all_scores = torch.cat([s.flatten() for s in reward_scores + train_scores])
            penalty = constraint_penalty(all_scores, self.constraint.min_mean_score, self.constraint.penalty)
            loss = self.config.frame_weight * credit_loss + self.config.policy_weight * policy_loss + penalty
            self.optimiser.zero_grad(set_to_none=True)
            loss.backward()
            self.optimiser.step()
            diagnostics = {
                "credit_loss": credit_loss.item(),
                "policy_loss": policy_loss.item(),
                "constraint_penalty": penalty.item(),
                "mean_score": all_scores.mean().item(),
                "score_spread": (all_scores.quantile(0.95) - all_scores.quantile(0.05)).item(),
            }
        return diagnostics

    def state_dict(self) -> dict[str, Any]:
        return {"controller": self.controller.state_dict(), "optimiser": self.optimiser.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.controller.load_state_dict(state["controller"])
        self.optimiser.load_state_dict(state["optimiser"])
