"""The budget presets and the config.json round trip that checkpoints rely on."""

from __future__ import annotations

from pathlib import Path

import pytest

from usqa.contracts.training import PRESETS, TrainConfig
from usqa.trainer.recipe.config_files import read_config, write_config
from usqa.trainer.recipe.presets import preset


@pytest.mark.parametrize("name", PRESETS)
def test_presets_round_trip_through_json(name: str, tmp_path: Path) -> None:
    config = preset(name, "segment", "selective", "ddpg")
    write_config(config, tmp_path / "config.json")
    assert read_config(tmp_path / "config.json") == config


def test_selective_rejection_defaults_to_the_operating_point() -> None:
    assert preset("debug", "classify").selective_rejection == 0.05
    assert preset("debug", "segment").selective_rejection == 0.15


def test_unknown_keys_and_presets_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown config key"):
        TrainConfig.from_dict({"nope": 1})
    with pytest.raises(ValueError, match="unknown config preset"):
        preset("huge")
