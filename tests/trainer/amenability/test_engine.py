"""The predictor loss and the engine's Algorithm 1 bookkeeping on a tiny in-memory task."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from usqa.contracts.training import RecipeConfig
from usqa.trainer.amenability.engine import AmenabilityEngine, EpisodeLog, predictor_loss
from usqa.trainer.amenability.reinforce import Reinforce
from usqa.trainer.data import SplitTensors, TaskData, reward_indices
from usqa.trainer.engine.base import Callback, Engine, Logs
from usqa.trainer.networks import build_controller, build_predictor
from usqa.trainer.recipe.presets import preset


def test_dice_ce_adds_the_soft_dice_loss_for_segmentation_only() -> None:
    logits = torch.zeros(1, 2, 2, 2)
    masks = torch.tensor([[[1, 0], [0, 0]]])
    ce = predictor_loss(logits, masks)
    # foreground probability 0.5 everywhere: soft Dice = (2 * 0.5 + 1) / (2 + 1 + 1) = 0.5
    assert predictor_loss(logits, masks, "dice_ce").item() == pytest.approx(ce.item() + 0.5)
    labels_logits = torch.zeros(3, 2)
    labels = torch.tensor([0, 1, 1])
    assert predictor_loss(labels_logits, labels, "dice_ce").item() == pytest.approx(np.log(2))


def split(n: int, rng: torch.Generator) -> SplitTensors:
    frames = torch.randint(0, 256, (n, 1, 16, 16), dtype=torch.uint8, generator=rng)
    return SplitTensors(
        frames,
        torch.randint(0, 2, (n,), generator=rng),
        np.ones(n, np.int8),
        ["s"] * n,
        [str(i) for i in range(n)],
    )


def test_one_episode_records_t_steps_and_updates_the_controller_once() -> None:
    rng = torch.Generator().manual_seed(0)
    data = TaskData(split(24, rng), split(8, rng), split(8, rng), 2)
    config = replace(preset("debug", "classify", "weighted", "reinforce"), recipe=RecipeConfig())
    predictor, controller = build_predictor(config), build_controller(config)
    learner = Reinforce(controller, config.reinforce, config.constraint)
    logs: list[EpisodeLog] = []

    class Collect(Callback):
        def on_iteration_end(self, engine: Engine, logs_: Logs) -> None:
            logs.append(EpisodeLog(**logs_))  # the logs are exactly an EpisodeLog's fields

    optimiser = torch.optim.SGD(predictor.parameters(), 0.01)
    index = reward_indices(data.val, config)
    engine = AmenabilityEngine(config, predictor, optimiser, data, index, learner, [Collect()])
    engine.run()
    assert engine.episode == config.episodes
    assert len(learner.memory.batches) == config.steps_per_episode  # the last episode's {B_t, a_t, R_t}
    assert all(a.shape == (config.batch_size,) for a in learner.memory.actions)
    assert [log.episode for log in logs] == list(range(1, config.episodes + 1))
    assert all("policy_loss" in log.learner for log in logs)  # one controller update per episode


def test_warm_up_episodes_select_every_frame_and_leave_the_controller_alone() -> None:
    rng = torch.Generator().manual_seed(0)
    data = TaskData(split(24, rng), split(8, rng), split(8, rng), 2)
    config = replace(preset("debug", "classify"), recipe=RecipeConfig(warmup_episodes=2), episodes=3)
    predictor, controller = build_predictor(config), build_controller(config)
    learner = Reinforce(controller, config.reinforce, config.constraint)
    before = {k: v.clone() for k, v in controller.state_dict().items()}
    logs: list[Logs] = []

    class Collect(Callback):
        def on_iteration_end(self, engine: Engine, logs_: Logs) -> None:
            logs.append(logs_)
            if logs_["warmup"]:
                assert all(torch.equal(v, before[k]) for k, v in controller.state_dict().items())

    optimiser = torch.optim.SGD(predictor.parameters(), 0.01)
    engine = AmenabilityEngine(
        config, predictor, optimiser, data, reward_indices(data.val, config), learner, [Collect()]
    )
    engine.run()
    assert [x["warmup"] for x in logs] == [True, True, False]
    assert [x["selected_fraction"] for x in logs[:2]] == [1.0, 1.0]
    assert logs[0]["learner"] == {} and "policy_loss" in logs[2]["learner"]
