"""The training config's floor: vocabularies spelled once, and the one typed override function."""

from __future__ import annotations

import typing

import pytest

from usqa.contracts.training import (
    ALGOS,
    PRESETS,
    REWARDS,
    TASKS,
    Algo,
    OverrideError,
    Preset,
    Reward,
    Task,
    TrainConfig,
    apply_overrides,
)


def test_the_vocabularies_are_the_literals() -> None:
    assert tuple(typing.get_args(t) for t in (Task, Reward, Algo, Preset)) == (TASKS, REWARDS, ALGOS, PRESETS)


def test_overrides_are_dotted_or_nested_typed_and_name_the_bad_key() -> None:
    config = apply_overrides(TrainConfig(), {"reward.kind": "avg", "backbone": {"widths": [4, 8, 16]}})
    assert config.reward.kind == "avg" and config.backbone.widths == (4, 8, 16)
    assert apply_overrides(config, {"recipe.early_stopping_patience": 3}).recipe.early_stopping_patience == 3
    assert (
        apply_overrides(config, {"reward": {"selective_rejection": None}}).reward.selective_rejection is None
    )
    for overrides, words in (
        ({"reward.nope": 1}, "'reward.nope' is not a training setting"),
        ({"episodes": 2.5}, "'episodes' must be an integer"),
        ({"credit": {"metric": "best"}}, "'credit.metric' must be one of"),
        ({"seed": -1}, "'seed' must be positive"),
        ({"frame.size": 0}, "FrameSpec.size must be a positive integer"),
        ({"reward": 3}, "'reward' must be an object"),
    ):
        with pytest.raises(OverrideError, match=words):
            apply_overrides(config, overrides)
