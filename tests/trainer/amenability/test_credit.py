"""algo "credit": per-frame R_w advantages, the clipped ratio, determinism, resume and an end-to-end run."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from usqa.contracts.training import BackboneConfig, ConstraintConfig, ControllerConfig, CreditConfig
from usqa.trainer.amenability.credit import (
    CreditLearner,
    clipped_policy_objective,
    frame_advantages,
    soft_frame_metric,
)
from usqa.trainer.amenability.evaluate import evaluate
from usqa.trainer.amenability.rewards import reward_weighted
from usqa.trainer.amenability.run import train
from usqa.trainer.amenability.run_folder import CHECKPOINT_FILE
from usqa.trainer.networks import Controller, seeded_init
from usqa.trainer.recipe.presets import preset

from .test_run import StopAfter


def test_exact_advantage_is_the_derivative_of_r_w_times_sum_h() -> None:
    metric, scores = torch.tensor([1.0, 0.0, 0.5]), torch.tensor([0.9, 0.4, 0.7], requires_grad=True)
    reward_weighted(metric, scores).backward()
    assert scores.grad is not None
    expected = frame_advantages(metric, scores) / scores.detach().sum()
    assert torch.allclose(scores.grad, expected, atol=1e-6)


def test_leave_one_out_compares_each_frame_with_the_others() -> None:
    metric, scores = torch.tensor([1.0, 0.0, 0.5]), torch.tensor([1.0, 1.0, 1.0])
    assert frame_advantages(metric, scores, "leave_one_out").tolist() == pytest.approx([0.75, -0.75, 0.0])
    with pytest.raises(ValueError, match="unknown credit advantage"):
        frame_advantages(metric, scores, "nope")


def test_soft_metric_is_the_probability_of_the_true_class() -> None:
    logits = torch.log(torch.tensor([[0.8, 0.2], [0.3, 0.7]]))
    assert soft_frame_metric("classify", logits, torch.tensor([0, 0])).tolist() == pytest.approx([0.8, 0.3])


def test_clipped_ratio_stops_the_gradient_outside_the_trust_region() -> None:
    behaviour, actions = torch.tensor([0.5]), torch.tensor([1.0])
    inside = torch.tensor([0.55], requires_grad=True)  # ratio 1.1
    outside = torch.tensor([0.7], requires_grad=True)  # ratio 1.4 > 1 + 0.2
    for probability in (inside, outside):
        clipped_policy_objective(probability, behaviour, actions, torch.tensor(1.0), 0.2).backward()
    assert inside.grad is not None and inside.grad.item() == pytest.approx(1 / 0.5)  # d(p / b) / dp
    assert outside.grad is not None and outside.grad.item() == 0.0
    value = clipped_policy_objective(torch.tensor([0.7]), behaviour, actions, torch.tensor(1.0), 0.2)
    assert value.item() == pytest.approx(1.2)
    # A negative advantage is not clipped from below when the ratio grew: min() keeps the pessimistic side.
    value = clipped_policy_objective(torch.tensor([0.7]), behaviour, actions, torch.tensor(-1.0), 0.2)
    assert value.item() == pytest.approx(-1.4)


def learner(seed: int = 0, **changes: object) -> CreditLearner:
    with seeded_init(seed):
        controller = Controller(ControllerConfig(backbone=BackboneConfig(widths=(4,)), initial_score=0.5))
    config = replace(CreditConfig(learning_rate=0.05), **changes)  # type: ignore[arg-type]
    return CreditLearner(controller, config, ConstraintConfig(penalty=0.0), "classify")


def episode(target: CreditLearner, frames: torch.Tensor, correct: torch.Tensor) -> dict[str, float]:
    """One episode: reward frames where the predictor is right on `correct` frames, one selection step."""
    target.start_episode()
    logits = torch.stack([correct * 4 - 2, 2 - correct * 4], dim=1)  # class 0 right where correct = 1
    target.observe_reward(frames, logits, torch.zeros(len(frames), dtype=torch.long))
    target.memory.batches.append(torch.arange(len(frames)))
    target.memory.behaviour.append(torch.full((len(frames),), 0.5))
    target.memory.actions.append(torch.ones(len(frames)))
    target.memory.rewards.append(0.1)
    return target.update(frames)


def frames_and_correct() -> tuple[torch.Tensor, torch.Tensor]:
    frames = torch.randint(
        0, 255, (6, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
    )
    return frames, torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0, 0.0])


def test_frames_above_the_weighted_mean_are_scored_up_the_others_down() -> None:
    frames, correct = frames_and_correct()
    target = learner(policy_weight=0.0)
    before = target.act(frames)
    for _ in range(3):
        diagnostics = episode(target, frames, correct)
    change = target.act(frames) - before
    assert (change[correct == 1] > 0).all() and (change[correct == 0] < 0).all()
    assert {"credit_loss", "policy_loss", "mean_score", "score_spread"} <= set(diagnostics)


def test_updates_are_deterministic_and_resume_continues_exactly() -> None:
    frames, correct = frames_and_correct()
    first, second = learner(), learner()
    episode(first, frames, correct)
    episode(second, frames, correct)
    resumed = learner(seed=5)  # other initial weights: everything must come from the state
    resumed.load_state_dict(copy.deepcopy(second.state_dict()))  # as if through torch.save / torch.load
    for target in (first, second, resumed):
        episode(target, frames, correct)
    assert torch.equal(first.act(frames), second.act(frames))
    assert torch.equal(first.act(frames), resumed.act(frames))


def test_debug_run_with_resampled_rewards_and_warmup_trains_resumes_and_evaluates(
    tiny_data: Path, tmp_path: Path
) -> None:
    config = preset("debug", "classify", "weighted", "credit")
    config = replace(
        config,
        episodes=4,
        recipe=replace(config.recipe, warmup_episodes=1),
        reward_frames=8,
        reward=replace(config.reward, resample=True, holdout_fraction=0.25),
    )
    whole = train(config, tiny_data, tmp_path / "whole", progress=False)
    with pytest.raises(KeyboardInterrupt):
        train(config, tiny_data, tmp_path / "cut", [StopAfter(2)], progress=False)
    assert torch.load(tmp_path / "cut" / CHECKPOINT_FILE, weights_only=False)["engine"]["episode"] == 2
    resumed = train(config, tiny_data, tmp_path / "cut", resume=True, progress=False)
    for (name, p), q in zip(
        whole.controller.state_dict().items(), resumed.controller.state_dict().values(), strict=True
    ):
        assert torch.equal(p, q), name
    lines = [json.loads(line) for line in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
    selection = [r["selected_fraction"] for r in lines if r["stage"] == "amenability"]
    assert selection[0] == 1.0  # the warm-up episode trains on every frame
    report = evaluate(tmp_path / "whole", tiny_data, tmp_path / "eval", resamples=3, plots=False)
    assert report["algo"] == "credit" and "controller" in report["kappa"]
