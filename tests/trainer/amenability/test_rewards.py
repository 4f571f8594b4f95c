"""Exact small cases for the metrics, the three rewards, the reward baseline and the constraint penalty."""

from __future__ import annotations

import pytest
import torch

from usqa.trainer.amenability.rewards import (
    RewardBaseline,
    compute_reward,
    constraint_penalty,
    frame_accuracy,
    frame_confidence,
    frame_dice,
    reward_average,
    reward_selective,
    reward_weighted,
    selection_probabilities,
)

METRIC = torch.tensor([1.0, 0.0, 1.0, 0.5])
SCORES = torch.tensor([0.9, 0.1, 0.6, 0.4])


def test_reward_average_is_the_mean_metric() -> None:
    assert reward_average(METRIC).item() == pytest.approx(0.625)


def test_reward_weighted_is_the_score_weighted_mean() -> None:
    # (0.9 * 1 + 0.1 * 0 + 0.6 * 1 + 0.4 * 0.5) / (0.9 + 0.1 + 0.6 + 0.4) = 1.7 / 2.0
    assert reward_weighted(METRIC, SCORES).item() == pytest.approx(0.85)


def test_reward_weighted_ignores_a_uniform_scaling_so_keeping_everything_does_not_win() -> None:
    assert reward_weighted(METRIC, SCORES * 0.1).item() == pytest.approx(0.85)
    assert reward_weighted(METRIC, torch.ones(4)).item() == pytest.approx(0.625)


def test_reward_weighted_keeps_weights_non_negative_and_survives_all_zero() -> None:
    # A negative weight is clamped to 0: frame 1 (metric 0) drops out instead of counting negatively.
    assert reward_weighted(METRIC, torch.tensor([1.0, -5.0, 1.0, 0.0])).item() == pytest.approx(1.0)
    assert reward_weighted(METRIC, torch.zeros(4)).item() == pytest.approx(0.625)


def test_reward_selective_drops_the_lowest_scored_fraction() -> None:
    # M' = floor(0.75 * 4) = 3 highest scores: frames 0, 2, 3 -> (1 + 1 + 0.5) / 3
    assert reward_selective(METRIC, SCORES, 0.25).item() == pytest.approx(2.5 / 3)
    # floor(0.9 * 4) = 3 too; s_rej = 0 keeps all.
    assert reward_selective(METRIC, SCORES, 0.1).item() == pytest.approx(2.5 / 3)
    assert reward_selective(METRIC, SCORES, 0.0).item() == pytest.approx(0.625)
    with pytest.raises(ValueError):
        reward_selective(METRIC, SCORES, 1.0)


def test_compute_reward_dispatches_and_needs_scores() -> None:
    assert compute_reward("avg", METRIC, None) == pytest.approx(0.625)
    assert compute_reward("weighted", METRIC, SCORES) == pytest.approx(0.85)
    assert compute_reward("selective", METRIC, SCORES, 0.25) == pytest.approx(2.5 / 3)
    with pytest.raises(ValueError):
        compute_reward("weighted", METRIC, None)


def test_ema_baseline_follows_the_paper() -> None:
    baseline = RewardBaseline("ema", alpha=0.9)
    assert baseline.update(1.0) == pytest.approx(0.0)  # Rbar_1 = R_1
    # Rbar_2 = 0.9 * 1 + 0.1 * 2 = 1.1; clipped = 2 - 1.1
    assert baseline.update(2.0) == pytest.approx(0.9)
    assert baseline.value == pytest.approx(1.1)
    # Rbar_3 = 0.9 * 1.1 + 0.1 * 0 = 0.99
    assert baseline.update(0.0) == pytest.approx(-0.99)


def test_window_baseline_is_the_mean_of_the_last_rewards() -> None:
    baseline = RewardBaseline("window", window=2)
    assert baseline.update(1.0) == pytest.approx(0.0)
    assert baseline.update(3.0) == pytest.approx(1.0)  # 3 - mean(1, 3)
    assert baseline.update(5.0) == pytest.approx(1.0)  # 5 - mean(3, 5)


def test_baseline_state_round_trip() -> None:
    a, b = RewardBaseline("ema"), RewardBaseline("ema")
    a.update(1.0)
    a.update(0.5)
    b.load_state_dict(a.state_dict())
    assert a.update(0.7) == pytest.approx(b.update(0.7))


def test_constraint_penalty_is_zero_when_satisfied_and_quadratic_below_c() -> None:
    assert constraint_penalty(torch.tensor([0.6, 0.8]), 0.5, 10.0).item() == 0.0
    # mean 0.2, c = 0.5: 10 * 0.3^2
    assert constraint_penalty(torch.tensor([0.1, 0.3]), 0.5, 10.0).item() == pytest.approx(0.9)
    scores = torch.tensor([0.1, 0.3], requires_grad=True)
    constraint_penalty(scores, 0.5, 10.0).backward()
    assert scores.grad is not None and (scores.grad < 0).all()  # descending the penalty raises the scores


def test_frame_metrics() -> None:
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0]])
    assert frame_accuracy(logits, torch.tensor([0, 1, 1])).tolist() == [1.0, 1.0, 0.0]
    seg = torch.zeros(2, 2, 2, 2)
    seg[0, 1, 0, :] = 1.0  # frame 0 predicts the top row
    masks = torch.zeros(2, 2, 2, dtype=torch.long)
    masks[0, 0, 0] = 1  # one of the two predicted pixels is right: 2 * 1 / (2 + 1)
    assert frame_dice(seg, masks).tolist() == pytest.approx([2 / 3, 1.0])  # frame 1: both empty
    assert frame_confidence(torch.tensor([[0.0, 0.0]])).tolist() == pytest.approx([0.5])
    assert frame_confidence(seg).shape == (2,)


def test_selection_probabilities_penalty_mode_is_the_scores() -> None:
    assert torch.equal(selection_probabilities(SCORES, "penalty", 0.5), SCORES)


def test_selection_probabilities_budget_mode_keeps_a_fraction_c_whatever_the_scale() -> None:
    # p_i = min(1, c h_i / mean h): mean h = 0.5, c = 0.5 -> p = h
    assert selection_probabilities(SCORES, "budget", 0.5).tolist() == pytest.approx(SCORES.tolist())
    # h -> 0 (the trivial solution) and h = 1 (keep everything) both select a fraction c in expectation.
    assert selection_probabilities(torch.full((4,), 1e-4), "budget", 0.8).tolist() == pytest.approx([0.8] * 4)
    assert selection_probabilities(torch.ones(4), "budget", 0.8).tolist() == pytest.approx([0.8] * 4)
    # Ranks are kept; probabilities are clipped at 1.
    assert selection_probabilities(torch.tensor([0.9, 0.1]), "budget", 0.8).tolist() == pytest.approx(
        [1.0, 0.16]
    )
    with pytest.raises(ValueError):
        selection_probabilities(SCORES, "nope", 0.5)
