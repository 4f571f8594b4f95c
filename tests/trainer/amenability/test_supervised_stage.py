"""The supervised stage: early stopping on the validation metric, best weights restored, seeded, in the run."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from usqa.contracts.training import SupervisedConfig
from usqa.trainer.amenability.engine import frame_metric, infer
from usqa.trainer.amenability.run import train
from usqa.trainer.amenability.run_folder import METRICS_FILE, SUPERVISED_FILE
from usqa.trainer.amenability.supervised_stage import supervised_stage
from usqa.trainer.data import SplitTensors
from usqa.trainer.engine.base import Callback, Engine, Logs
from usqa.trainer.engine.callbacks import BestModel
from usqa.trainer.recipe.presets import preset


def split(n: int, seed: int, noise: bool = False) -> SplitTensors:
    """Frames whose class is their brightness (learnable), or pure noise labels (nothing to learn)."""
    rng = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=rng)
    frames = torch.randint(0, 100, (n, 1, 32, 32), generator=rng, dtype=torch.uint8)
    if not noise:
        frames = frames + (labels * 120).to(torch.uint8).view(n, 1, 1, 1)
    return SplitTensors(frames, labels, np.ones(n, np.int8), ["s"] * n, [str(i) for i in range(n)])


def config(steps: int, patience: int) -> object:
    return replace(
        preset("debug", "classify"),
        supervised=SupervisedConfig(steps=steps, eval_every=2, patience=patience, learning_rate=1e-2),
    )


def test_it_learns_a_learnable_task_and_restores_the_best_check() -> None:
    cfg = config(steps=40, patience=100)
    val = split(64, 1)
    result = supervised_stage(cfg, split(128, 0), val)  # type: ignore[arg-type]
    metrics = [row["metric"] for row in result.history]
    assert result.best_metric == max(metrics) and result.best_metric > 0.9
    assert result.best_check == 1 + metrics.index(max(metrics))
    logits = infer(result.predictor, val.frames, torch.device("cpu"))
    assert float(frame_metric("classify", logits, val.targets).mean()) == pytest.approx(result.best_metric)


def test_it_stops_after_patience_checks_without_improvement() -> None:
    cfg = config(steps=200, patience=2)
    result = supervised_stage(cfg, split(64, 0, noise=True), split(64, 1, noise=True))  # type: ignore[arg-type]
    assert result.stopped_early and result.steps < 200
    assert len(result.history) == result.best_check + 2
    assert result.steps == 2 * len(result.history)


def test_it_is_seeded() -> None:
    cfg = config(steps=6, patience=100)
    a = supervised_stage(cfg, split(64, 0), split(32, 1))  # type: ignore[arg-type]
    b = supervised_stage(cfg, split(64, 0), split(32, 1))  # type: ignore[arg-type]
    for p, q in zip(a.predictor.state_dict().values(), b.predictor.state_dict().values(), strict=True):
        assert torch.equal(p, q)


def test_both_stages_of_a_run_start_from_the_stages_predictor(tiny_data: Path, tmp_path: Path) -> None:
    cfg = replace(preset("debug"), episodes=0)  # no episode after the stage: both are its predictor
    assert cfg.supervised.steps > 0
    run = tmp_path / "run"
    result = train(cfg, tiny_data, run, progress=False)
    saved = torch.load(run / SUPERVISED_FILE, weights_only=False)
    assert saved["stage"]["steps"] > 0 and "supervised" in result.seconds
    assert result.baseline is not None
    for network in (result.predictor, result.baseline):
        for key, value in network.state_dict().items():
            assert torch.equal(saved["predictor"][key], value), key
    stages = [json.loads(line)["stage"] for line in (run / METRICS_FILE).read_text().splitlines()]
    assert set(stages) == {"supervised"}


def test_the_stages_predictor_stays_a_candidate_of_both_continuations(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Best-on-validation: the baseline and Algorithm 1 keep a predictor only if it beats the stage's on the
    validation reward frames beyond their sampling error; a continuation that only loses ends with the stage's
    predictor."""
    offered: list[float] = []
    original = BestModel.offer_start

    def record(self: BestModel, value: float, engine: Engine, margin: float = 0.0) -> None:
        assert margin >= 0  # the reward frames' sampling error
        offered.append(value + margin)
        original(self, value, engine, margin)

    monkeypatch.setattr(BestModel, "offer_start", record)
    cfg = replace(preset("debug"), episodes=2, predictor_learning_rate=50.0)  # a continuation that wrecks it
    assert cfg.recipe.best_on_validation
    result = train(cfg, tiny_data, tmp_path / "run", progress=False)
    assert len(offered) == 2  # the baseline's and Algorithm 1's
    saved = torch.load(tmp_path / "run" / SUPERVISED_FILE, weights_only=False)["predictor"]
    logged = [json.loads(line) for line in (tmp_path / "run" / METRICS_FILE).read_text().splitlines()]
    warmup = cfg.recipe.warmup_episodes
    for network, stage, start, first in (
        (result.baseline, "baseline", offered[0], 1),
        (result.predictor, "amenability", offered[1], warmup + 1),
    ):
        assert network is not None
        metrics = [e["metric"] for e in logged if e["stage"] == stage and e["episode"] >= first]
        if all(torch.equal(saved[k], v) for k, v in network.state_dict().items()):
            assert all(m <= start for m in metrics)  # nothing beat the stage: it stayed
        else:
            assert max(metrics) > start  # an episode beat the stage on validation, and only then is it kept
    offered.clear()
    train(
        replace(cfg, supervised=replace(cfg.supervised, steps=0)),
        tiny_data,
        tmp_path / "bare",
        progress=False,
    )
    assert offered == []  # no stage: nothing to start from


class CrashAt(Callback):
    def on_iteration_end(self, engine: Engine, logs: Logs) -> None:
        if logs.get("stage") == "supervised" and engine.iteration == 2:
            raise KeyboardInterrupt


def test_a_run_that_crashed_inside_the_stage_resumes_exactly(tiny_data: Path, tmp_path: Path) -> None:
    cfg = replace(preset("debug"), episodes=1)
    whole = train(cfg, tiny_data, tmp_path / "whole", progress=False)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tiny_data, tmp_path / "cut", [CrashAt()], progress=False)
    assert not (tmp_path / "cut" / SUPERVISED_FILE).exists()
    resumed = train(cfg, tiny_data, tmp_path / "cut", resume=True, progress=False)
    for a, b in ((whole.predictor, resumed.predictor), (whole.baseline, resumed.baseline)):
        assert a is not None and b is not None
        for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
            assert torch.equal(p, q), name
    lines = (tmp_path / "cut" / METRICS_FILE).read_text().splitlines()
    assert len(lines) == len((tmp_path / "whole" / METRICS_FILE).read_text().splitlines())
