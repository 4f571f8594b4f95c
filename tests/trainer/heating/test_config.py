from __future__ import annotations

from pathlib import Path

import pytest

from usqa.contracts.training import PRESETS
from usqa.trainer.heating.config import (
    HEATING_SHAPES,
    FinetuneConfig,
    HeatConfig,
    finetune_preset,
    heat_preset,
    scaled_blur,
)
from usqa.trainer.recipe.config_files import read_config_dict, write_config


@pytest.mark.parametrize("name", PRESETS)
def test_heating_keeps_its_own_frame_size_and_backbone(name: str) -> None:
    frame, backbone = HEATING_SHAPES[name]
    for config in (heat_preset(name), finetune_preset(name)):
        assert config.backbone == backbone and config.frame == frame
    heat = heat_preset(name)
    assert (heat.mask.blur_kernel, heat.mask.blur_sigma) == scaled_blur(heat.frame.size)
    assert heat.mask.grid <= heat.frame.size


def test_default_is_the_papers_best_setting_scaled_to_128_px() -> None:
    config = heat_preset("default")
    assert config.frame.size == 128 and config.mask.grid == 64 and config.mask.noise == "beta"
    assert (config.mask.blur_kernel, config.mask.blur_sigma) == (7, 3.43)
    assert (config.policy.tau_image, config.policy.tau_dataset) == (0.9, 0.99)
    assert config.loss == "paper"
    assert config.policy.backbone.widths == (8, 16, 32, 64) and config.policy.backbone.blocks_per_stage == 1


def test_configs_round_trip_through_json(tmp_path: Path) -> None:
    write_config(heat_preset("demo"), tmp_path / "heat.json")
    assert HeatConfig.from_dict(read_config_dict(tmp_path / "heat.json")) == heat_preset("demo")
    write_config(finetune_preset("debug"), tmp_path / "ft.json")
    assert FinetuneConfig.from_dict(read_config_dict(tmp_path / "ft.json")) == finetune_preset("debug")
    with pytest.raises(ValueError, match="unknown config preset"):
        heat_preset("huge")
