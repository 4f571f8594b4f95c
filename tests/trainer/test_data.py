"""Training mini-batches: the class-balanced sampler and which sampler a config gets."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from usqa.contracts.training import RecipeConfig
from usqa.trainer.data import BalancedSampler, BatchSampler, SplitTensors, train_sampler
from usqa.trainer.recipe.presets import preset


def test_balanced_sampler_draws_classes_equally_often() -> None:
    labels = torch.tensor([0] * 90 + [1] * 10)
    sampler = BalancedSampler(labels, batch_size=50, seed=0)
    drawn = torch.cat([sampler.next() for _ in range(200)])
    share = float((labels[drawn] == 1).float().mean())
    assert abs(share - 0.5) < 0.03  # 10 % of the frames, half of the draws


def test_balanced_sampler_is_seeded_and_resumable() -> None:
    labels = torch.tensor([0, 0, 0, 1, 1, 2])
    a, b = BalancedSampler(labels, 4, seed=7), BalancedSampler(labels, 4, seed=7)
    assert all(torch.equal(a.next(), b.next()) for _ in range(5))
    state = a.state_dict()
    expected = a.next()
    c = BalancedSampler(labels, 4, seed=0)
    c.load_state_dict(state)
    assert torch.equal(c.next(), expected)


def test_the_recipe_chooses_the_sampler() -> None:
    split = SplitTensors(
        frames=torch.zeros(4, 1, 8, 8, dtype=torch.uint8),
        targets=torch.tensor([0, 1, 1, 1]),
        amenable=np.ones(4, np.int8),
        subjects=["a"] * 4,
        names=[str(i) for i in range(4)],
    )
    config = preset("debug", "classify")
    assert isinstance(train_sampler(split, config, 0), BalancedSampler)
    plain = replace(config, recipe=RecipeConfig())
    assert isinstance(train_sampler(split, plain, 0), BatchSampler)
    assert isinstance(train_sampler(split, replace(config, task="segment"), 0), BatchSampler)
