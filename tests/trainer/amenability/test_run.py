"""`train()` and the run folder: exact resume, and initial weights read only as backbone files."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from usqa.contracts.frames import FrameSpec
from usqa.contracts.training import ALGOS, BackboneConfig
from usqa.trainer.amenability.engine import frame_metric, infer
from usqa.trainer.amenability.run import (
    RunError,
    adopt_backbone_config,
    build_networks,
    load_run,
    train,
    write_predictor_backbone,
)
from usqa.trainer.amenability.run_folder import CHECKPOINT_FILE, METRICS_FILE
from usqa.trainer.data import load_task_data, reward_indices
from usqa.trainer.engine.base import Callback, Engine, Logs
from usqa.trainer.heating.backbone_io import load_backbone, read_backbone_meta, save_backbone
from usqa.trainer.networks import FrameClassifier, seeded_init
from usqa.trainer.recipe.presets import preset

SMALL = BackboneConfig(widths=(4, 8))


class StopAfter(Callback):
    """Simulates a crash after `episode` (the checkpointer has already written that episode)."""

    def __init__(self, episode: int) -> None:
        self.episode = episode

    def on_iteration_end(self, engine: Engine, logs: Logs) -> None:
        if logs["stage"] == "amenability" and logs["episode"] == self.episode:
            raise KeyboardInterrupt


@pytest.mark.parametrize("algo", ALGOS)
def test_resume_continues_exactly_like_an_uninterrupted_run(
    algo: str, tiny_data: Path, tmp_path: Path
) -> None:
    config = preset("debug", "classify", "weighted", algo)
    whole = train(config, tiny_data, tmp_path / "whole", progress=False)
    with pytest.raises(KeyboardInterrupt):
        train(config, tiny_data, tmp_path / "cut", [StopAfter(2)], progress=False)
    assert torch.load(tmp_path / "cut" / CHECKPOINT_FILE, weights_only=False)["engine"]["episode"] == 2
    resumed = train(config, tiny_data, tmp_path / "cut", resume=True, progress=False)
    for a, b in ((whole.controller, resumed.controller), (whole.predictor, resumed.predictor)):
        for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
            assert torch.equal(p, q), name
    lines = (tmp_path / "cut" / METRICS_FILE).read_text().splitlines()
    assert len(lines) == len((tmp_path / "whole" / METRICS_FILE).read_text().splitlines())
    # the log of the resumed run is the uninterrupted one's, up to the wall times
    timing = {"elapsed_s", "eta_s"}
    for cut, straight in zip(
        lines, (tmp_path / "whole" / METRICS_FILE).read_text().splitlines(), strict=True
    ):
        a, b = json.loads(cut), json.loads(straight)
        assert {k: v for k, v in a.items() if k not in timing} == {
            k: v for k, v in b.items() if k not in timing
        }


def _backbone_file(path: Path, frame: FrameSpec | None) -> Path:
    with seeded_init(0):
        source = FrameClassifier(SMALL, 3)
    meta = {} if frame is None else {"frame_spec": frame.to_dict()}
    return save_backbone(path, source.backbone.state_dict(), SMALL, meta)


def test_the_backbone_file_initialises_the_predictor_and_the_controller(tmp_path: Path) -> None:
    config = preset("debug")
    path = _backbone_file(tmp_path / "backbone.pt", config.frame)
    config = adopt_backbone_config(replace(config, backbone_checkpoint=str(path)))
    assert config.backbone == SMALL and config.controller.backbone == SMALL
    state, _ = load_backbone(path)
    predictor, controller = build_networks(config)
    for network in (predictor, controller):
        for key, value in state.items():
            assert torch.equal(network.backbone.state_dict()[key], value), key


def test_a_backbone_of_another_frame_spec_is_refused_naming_both(tmp_path: Path) -> None:
    config = preset("debug")
    other = replace(config.frame, size=config.frame.size * 2)
    path = _backbone_file(tmp_path / "backbone.pt", other)
    with pytest.raises(RunError) as error:
        adopt_backbone_config(replace(config, backbone_checkpoint=str(path)))
    assert str(other) in str(error.value) and str(config.frame) in str(error.value)


def test_a_file_that_is_no_backbone_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    torch.save({"predictor": FrameClassifier(SMALL, 2).state_dict()}, path)  # keys are not guessed
    with pytest.raises(RunError, match="not a usqa backbone"):
        adopt_backbone_config(replace(preset("debug"), backbone_checkpoint=str(path)))


def test_a_finished_runs_predictor_becomes_a_backbone_file(tiny_data: Path, tmp_path: Path) -> None:
    config = replace(preset("debug"), train_baseline=False, episodes=1)
    result = train(config, tiny_data, tmp_path / "run", progress=False)
    path = write_predictor_backbone(tmp_path / "run", tmp_path / "base.pt")
    state, backbone = load_backbone(path)
    assert backbone == result.config.backbone
    assert read_backbone_meta(path)["frame_spec"] == result.config.frame.to_dict()
    assert isinstance(result.predictor, FrameClassifier)
    for key, value in result.predictor.backbone.state_dict().items():
        assert torch.equal(state[key], value), key
    segment = replace(preset("debug", "segment"), train_baseline=False, episodes=1)
    train(segment, tiny_data, tmp_path / "seg", progress=False)
    with pytest.raises(RunError, match="no backbone"):
        write_predictor_backbone(tmp_path / "seg", tmp_path / "seg.pt")


def test_the_saved_predictor_is_the_best_on_validation_one(tiny_data: Path, tmp_path: Path) -> None:
    config = replace(preset("debug", task="classify"), episodes=5)
    assert config.recipe.best_on_validation and config.recipe.warmup_episodes == 1
    run = tmp_path / "run"
    train(config, tiny_data, run, progress=False)
    lines = [json.loads(line) for line in (run / METRICS_FILE).read_text().splitlines()]
    selective = [x for x in lines if x["stage"] == "amenability" and not x["warmup"]]
    assert [x["episode"] for x in selective] == [2, 3, 4, 5]  # the warm-up episode is not a candidate
    resolved, _, predictor, _ = load_run(run)
    data = load_task_data(tiny_data, resolved)
    index = reward_indices(data.val, resolved)
    logits = infer(predictor, data.val.frames[index], torch.device("cpu"))
    metric = float(frame_metric("classify", logits, data.val.targets[index]).mean())
    assert metric == pytest.approx(max(x["metric"] for x in selective))
