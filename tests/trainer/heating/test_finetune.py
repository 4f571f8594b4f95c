from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from usqa.contracts.frames import FrameSpec
from usqa.trainer.heating.config import finetune_preset, heat_preset
from usqa.trainer.heating.data import ClassData, load_class_data
from usqa.trainer.heating.finetune import build_finetune_engine, finetune
from usqa.trainer.heating.heat import heat

DEBUG = heat_preset("debug")


@pytest.fixture(scope="module")
def data(multipreset_data: Path) -> ClassData:
    return load_class_data([multipreset_data], DEBUG.frame, "auto")


def test_finetuning_starts_from_the_heated_backbone_and_head(tmp_path: Path, data: ClassData) -> None:
    heated = heat(DEBUG, data, tmp_path / "heat", progress=False)
    config = finetune_preset("debug")
    engine = build_finetune_engine(config, data, torch.device("cpu"), tmp_path / "heat" / "backbone.pt")
    for a, b in zip(
        heated.classifier.state_dict().values(), engine.classifier.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)
    tuned = finetune(
        config, data, tmp_path / "ft", backbone=tmp_path / "heat" / "backbone.pt", progress=False
    )
    assert tuned.step == config.steps and (tmp_path / "ft" / "backbone.pt").is_file()
    other = replace(config, frame=FrameSpec(size=64))
    with pytest.raises(ValueError, match="frames"):
        finetune(other, data, backbone=tmp_path / "heat" / "backbone.pt", progress=False)


@pytest.mark.parametrize("augment", ["cutmix", "randaugment"])
def test_comparison_augmentations_train(data: ClassData, augment: str) -> None:
    config = replace(finetune_preset("debug"), augment=augment, steps=2)  # type: ignore[arg-type]
    assert finetune(config, data, progress=False).step == 2
