from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from usqa.contracts.training import BackboneConfig
from usqa.trainer.heating.backbone_io import (
    BackboneFileError,
    load_backbone,
    load_head,
    read_backbone_meta,
    save_backbone,
)
from usqa.trainer.networks import Controller, FrameClassifier, seeded_init
from usqa.trainer.networks import load_backbone as init_backbone
from usqa.trainer.recipe.presets import preset as rl_preset

SMALL = BackboneConfig(widths=(4, 8))


def _classifier(seed: int, classes: int = 3) -> FrameClassifier:
    with seeded_init(seed):
        return FrameClassifier(SMALL, classes)


def test_round_trip_keeps_state_config_meta_and_head(tmp_path: Path) -> None:
    source = _classifier(0)
    path = save_backbone(
        tmp_path / "b" / "backbone.pt",
        source.backbone.state_dict(),
        SMALL,
        {"frame_spec": {"size": 32}, "class_names": ["a", "b", "c"]},
        head_state=source.head.state_dict(),
    )
    state, config = load_backbone(path)
    assert config == SMALL
    assert state.keys() == source.backbone.state_dict().keys()
    for key, value in source.backbone.state_dict().items():
        assert torch.equal(state[key], value)
    assert read_backbone_meta(tmp_path / "b")["class_names"] == ["a", "b", "c"]  # a run folder resolves
    head = load_head(path)
    assert head is not None and torch.equal(head["weight"], source.head.weight)
    # plain tensors and containers only: the safe loader reads it
    assert torch.load(path, weights_only=True)["format"].startswith("usqa-backbone")


def test_the_file_initialises_the_rl_trainers_predictor_and_controller(tmp_path: Path) -> None:
    source = _classifier(0)
    path = save_backbone(tmp_path / "backbone.pt", source.backbone.state_dict(), SMALL)
    state, config = load_backbone(path)
    predictor = _classifier(1, classes=2)
    with seeded_init(2):
        controller = Controller(replace(rl_preset("debug").controller, backbone=config))
    for network in (predictor, controller):
        assert init_backbone(network, state) == []  # every tensor fits
        for key, value in source.backbone.state_dict().items():
            assert torch.equal(network.backbone.state_dict()[key], value)


def test_foreign_and_missing_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(BackboneFileError, match="no backbone checkpoint"):
        load_backbone(tmp_path / "nothing.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(BackboneFileError, match="not a usqa backbone"):
        load_backbone(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(BackboneFileError, match="cannot read"):
        load_backbone(tmp_path / "junk.pt")
