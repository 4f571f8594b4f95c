from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from usqa.trainer.engine.base import Callback, Engine, Logs
from usqa.trainer.engine.callbacks import History
from usqa.trainer.heating.backbone_io import load_backbone
from usqa.trainer.heating.config import HeatConfig, heat_preset
from usqa.trainer.heating.data import ClassData, load_class_data
from usqa.trainer.heating.heat import heat, load_heat_checkpoint
from usqa.trainer.heating.run_folder import CHECKPOINT_FILE
from usqa.trainer.recipe.config_files import read_config_dict

DEBUG = heat_preset("debug")


class StopAt(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_iteration_end(self, engine: Engine, logs: Logs) -> None:
        if engine.iteration == self.step:
            raise KeyboardInterrupt


@pytest.fixture(scope="module")
def data(multipreset_data: Path) -> ClassData:
    return load_class_data([multipreset_data], DEBUG.frame, "auto")


def test_heating_writes_a_run_whose_backbone_and_config_rebuild_it(tmp_path: Path, data: ClassData) -> None:
    history = History()
    engine = heat(DEBUG, data, tmp_path / "run", progress=False, callbacks=[history])
    run = tmp_path / "run"
    assert {p.name for p in run.iterdir()} >= {
        "config.json",
        CHECKPOINT_FILE,
        "backbone.pt",
        "metrics.json",
        "log.jsonl",
    }
    assert HeatConfig.from_dict(read_config_dict(run / "config.json")) == DEBUG
    assert [round(h["step"]) for h in history.logs] == [1, 2, 3, 4]
    assert all(0 < h["mask_mean"] < 1 for h in history.logs)
    state, config = load_backbone(run / "backbone.pt")
    assert config == DEBUG.backbone
    for key, value in engine.classifier.backbone.state_dict().items():
        assert torch.equal(state[key], value)
    assert not any(key.startswith(("policy", "alpha_head")) for key in state)  # the policy is not in it
    metrics = json.loads((run / "metrics.json").read_text())["metrics"]
    assert set(metrics) == {"clean", "masked"}
    checkpoint = load_heat_checkpoint(run / CHECKPOINT_FILE)
    policy_state = checkpoint["engine"]["networks"]["policy"]
    assert torch.equal(policy_state["dataset_alpha"], engine.policy.dataset_alpha)


@pytest.mark.parametrize("loss", ["paper", "baseline"])
def test_resume_continues_exactly_with_the_dataset_level_parameters(
    tmp_path: Path, data: ClassData, loss: str
) -> None:
    config = replace(DEBUG, steps=4, checkpoint_every=2, loss=loss)  # type: ignore[arg-type]
    straight = heat(config, data, tmp_path / "straight", progress=False)
    # a run interrupted after two steps (just after its checkpoint), then resumed to four
    with pytest.raises(KeyboardInterrupt):
        heat(config, data, tmp_path / "resumed", progress=False, callbacks=[StopAt(2)])
    saved = load_heat_checkpoint(tmp_path / "resumed" / CHECKPOINT_FILE)
    resumed = heat(config, data, tmp_path / "resumed", resume=True, progress=False)
    assert saved["engine"]["step"] == 2 and resumed.step == 4
    for a, b in zip(
        straight.classifier.state_dict().values(), resumed.classifier.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)
    assert torch.equal(straight.policy.dataset_alpha, resumed.policy.dataset_alpha)
    assert torch.equal(straight.policy.dataset_beta, resumed.policy.dataset_beta)
    assert straight.baseline.value == resumed.baseline.value


@pytest.mark.parametrize("noise,grid,kernel", [("gaussian", 8, 3), ("uniform", 16, 0), ("beta", 32, 0)])
def test_table4_variants_train(data: ClassData, noise: str, grid: int, kernel: int) -> None:
    mask = replace(DEBUG.mask, noise=noise, grid=grid, blur_kernel=kernel)  # type: ignore[arg-type]
    engine = heat(replace(DEBUG, mask=mask, steps=2), data, progress=False)
    assert engine.step == 2 and torch.isfinite(torch.tensor(engine.last_logs["loss"]))
