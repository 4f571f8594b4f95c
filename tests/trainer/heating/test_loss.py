from __future__ import annotations

import math

import torch

from usqa.trainer.heating.loss import MovingAverageBaseline, heating_loss, mask_log_likelihood


def test_eq8_on_a_small_case() -> None:
    # frame 0: cells with P = 1 and 3 -> log(1 + 3); frame 1: P = 2 and 2 -> log 4; CE = 1 and 2
    log_prob = torch.log(torch.tensor([[1.0, 3.0], [2.0, 2.0]]))
    cross_entropy = torch.tensor([1.0, 2.0])
    assert torch.allclose(mask_log_likelihood(log_prob), torch.full((2,), math.log(4)))
    assert math.isclose(float(heating_loss(log_prob, cross_entropy)), 1.5 * math.log(4), rel_tol=1e-6)


def test_gradients_of_eq8_reach_both_networks_with_each_others_weights() -> None:
    log_prob = torch.log(torch.tensor([[1.0, 3.0], [2.0, 2.0]])).requires_grad_()
    cross_entropy = torch.tensor([1.0, 2.0], requires_grad=True)
    heating_loss(log_prob, cross_entropy).backward()
    assert log_prob.grad is not None and cross_entropy.grad is not None
    # d/dCE_i = LSE_i / N; d/dlogP_ic = CE_i softmax_c(logP_i) / N
    assert torch.allclose(cross_entropy.grad, torch.full((2,), math.log(4) / 2))
    expected = torch.tensor([[0.25, 0.75], [0.5, 0.5]]) * torch.tensor([[1.0], [2.0]]) / 2
    assert torch.allclose(log_prob.grad, expected)


def test_baseline_variant_changes_the_policys_reward_only() -> None:
    def grads(baseline: float | None) -> tuple[torch.Tensor, torch.Tensor]:
        log_prob = torch.log(torch.tensor([[1.0, 3.0], [2.0, 2.0]])).requires_grad_()
        cross_entropy = torch.tensor([1.0, 2.0], requires_grad=True)
        heating_loss(log_prob, cross_entropy, baseline).backward()
        assert log_prob.grad is not None and cross_entropy.grad is not None
        return log_prob.grad, cross_entropy.grad

    paper_policy, paper_classifier = grads(None)
    policy, classifier = grads(1.5)
    assert torch.allclose(classifier, paper_classifier)
    softmax = torch.tensor([[0.25, 0.75], [0.5, 0.5]])
    assert torch.allclose(policy, softmax * torch.tensor([[1.0 - 1.5], [2.0 - 1.5]]) / 2)
    assert not torch.allclose(policy, paper_policy)


def test_moving_average_baseline() -> None:
    baseline = MovingAverageBaseline(momentum=0.9)
    baseline.update(torch.tensor([1.0, 3.0]))
    assert baseline.value == 2.0
    baseline.update(torch.tensor([4.0]))
    assert baseline.value is not None and math.isclose(baseline.value, 0.9 * 2.0 + 0.1 * 4.0)
    restored = MovingAverageBaseline(momentum=0.5)
    restored.load_state_dict(baseline.state_dict())
    assert restored == baseline
