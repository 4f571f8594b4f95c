"""The Bernoulli log-likelihood (eq. 8, corrected), returns, and one REINFORCE update."""

from __future__ import annotations

import pytest
import torch

from usqa.contracts.training import BackboneConfig, ConstraintConfig, ControllerConfig, ReinforceConfig
from usqa.trainer.amenability.reinforce import Reinforce, bernoulli_log_likelihood, returns_to_go
from usqa.trainer.networks import Controller


def test_log_likelihood_matches_torch_bernoulli() -> None:
    scores = torch.tensor([[0.9, 0.2, 0.5], [0.3, 0.7, 0.99]])
    actions = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    expected = torch.distributions.Bernoulli(probs=scores).log_prob(actions).sum(-1)
    assert torch.allclose(bernoulli_log_likelihood(scores, actions), expected, atol=1e-6)


def test_log_likelihood_small_case_by_hand() -> None:
    value = bernoulli_log_likelihood(torch.tensor([0.5, 0.25]), torch.tensor([1.0, 0.0]))
    assert value.item() == pytest.approx(torch.log(torch.tensor(0.5 * 0.75)).item())


def test_returns_to_go() -> None:
    assert returns_to_go(torch.tensor([1.0, 0.0, 2.0]), 0.5).tolist() == pytest.approx([1.5, 1.0, 2.0])
    assert returns_to_go(torch.tensor([1.0, -1.0]), 0.0).tolist() == [1.0, -1.0]


def test_reinforce_raises_the_probability_of_rewarded_actions() -> None:
    torch.manual_seed(0)
    controller = Controller(ControllerConfig(backbone=BackboneConfig(widths=(4,)), initial_score=0.5))
    learner = Reinforce(controller, ReinforceConfig(learning_rate=0.05), ConstraintConfig(penalty=0.0))
    frames = torch.randint(0, 255, (4, 1, 8, 8), dtype=torch.uint8)
    actions = torch.tensor([1.0, 1.0, 1.0, 1.0])
    before = learner.act(frames).mean().item()
    for _ in range(5):
        learner.start_episode()
        learner.memory.batches.append(torch.arange(4))
        learner.memory.behaviour.append(torch.full((4,), 0.5))
        learner.memory.actions.append(actions)
        learner.memory.rewards.append(1.0)  # selecting everything was rewarded
        diagnostics = learner.update(frames)
    assert learner.act(frames).mean().item() > before
    assert set(diagnostics) == {"policy_loss", "constraint_penalty", "mean_score"}
