"""The one set of callbacks, on a scripted engine: best model and early stopping, JSONL, checkpoints, progress."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.support.engines import ScriptedEngine
from usqa.trainer.engine.base import Engine
from usqa.trainer.engine.callbacks import (
    BestModel,
    Checkpointer,
    History,
    MetricsLog,
    ProgressHook,
    atomic_torch_save,
)


def weight(engine: ScriptedEngine) -> float:
    return float(engine.network.weight.detach())


def test_best_model_is_off_by_default_and_keeps_the_best_iterations_networks() -> None:
    best = BestModel()
    engine = ScriptedEngine([0.2, 0.5, 0.4, 0.3], [best])
    engine.run()
    assert engine.iteration == 4  # no patience: no early stop
    assert (best.best_value, best.best_iteration) == (0.5, 2)
    assert weight(engine) == 2.0  # restored at the end


def test_the_start_offered_to_best_model_is_kept_unless_an_iteration_beats_it() -> None:
    best = BestModel()
    engine = ScriptedEngine([0.2, 0.5, 0.4], [best])
    with torch.no_grad():
        engine.network.weight.fill_(0.0)
    best.offer_start(0.6, engine)  # the weights the run starts from (weight 0), better than every iteration
    engine.run()
    assert (best.best_value, best.best_iteration) == (0.6, 0) and weight(engine) == 0.0
    beaten = BestModel()
    engine = ScriptedEngine([0.2, 0.7, 0.4], [beaten])
    beaten.offer_start(0.6, engine)
    beaten.offer_start(0.9, engine)  # offered once: a later offer is not a start
    engine.run()
    assert (beaten.best_value, beaten.best_iteration) == (0.7, 2) and weight(engine) == 2.0


def test_an_iteration_must_beat_the_offered_start_by_its_margin_and_later_ones_only_the_best() -> None:
    guarded = BestModel()
    engine = ScriptedEngine([0.65, 0.69, 0.75, 0.76], [guarded])
    guarded.offer_start(0.6, engine, margin=0.1)  # within the start's sampling error: 0.65 and 0.69 lose
    engine.run()
    assert (guarded.best_value, guarded.best_iteration) == (0.76, 4)  # 0.75 beat the start; 0.76 beat 0.75
    restored = BestModel()
    restored.load_state_dict(guarded.state_dict())
    assert restored.start_margin == 0.1
    kept = BestModel()
    engine = ScriptedEngine([0.65, 0.69], [kept])
    with torch.no_grad():
        engine.network.weight.fill_(0.0)
    kept.offer_start(0.6, engine, margin=0.1)
    engine.run()
    assert kept.best_iteration == 0 and weight(engine) == 0.0  # no gain beyond the margin: the start stays


def test_best_model_stops_after_patience_iterations_without_improvement() -> None:
    best = BestModel(patience=2, restore=False)
    engine = ScriptedEngine([0.2, 0.5, 0.5, 0.4, 0.9, 1.0], [best])
    engine.run()
    assert engine.iteration == 4 and best.stopped_at == 4
    assert best.best_iteration == 2 and weight(engine) == 4.0  # not restored


def test_best_model_minimises_ignores_nan_and_names_a_missing_metric() -> None:
    best = BestModel(mode="min")
    engine = ScriptedEngine([float("nan"), 0.5, 0.2, 0.3], [best])
    engine.run()
    assert best.best_iteration == 3 and weight(engine) == 3.0
    with pytest.raises(KeyError, match="'accuracy'"):
        ScriptedEngine([0.1], [BestModel("accuracy")]).run()


def test_metrics_log_writes_every_kth_and_the_last_and_a_resume_drops_later_lines(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    ScriptedEngine([0.1, 0.2, 0.3, 0.4, 0.5], [MetricsLog(path, every=2)]).run()
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 5] and rows[0] == {"step": 2, "metric": 0.2, "loss": 1.0}
    resumed = ScriptedEngine([0.1, 0.2, 0.3, 0.4, 0.5], [MetricsLog(path, every=2)])
    resumed.iteration = 3  # as load_state_dict of a checkpoint at step 3 would
    resumed.run()
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [2, 4, 5]


def test_metrics_log_keeps_other_stages_lines(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text(json.dumps({"stage": "baseline", "step": 3}) + "\n")
    ScriptedEngine([0.1], [MetricsLog(path)]).run()
    assert [json.loads(line).get("stage") for line in path.read_text().splitlines()] == ["baseline", None]


def test_checkpointer_saves_every_kth_the_last_and_an_early_stop(tmp_path: Path) -> None:
    saved: list[int] = []

    def payload(engine: Engine) -> dict[str, Any]:
        saved.append(engine.iteration)
        return {"kind": "test", "engine": engine.state_dict()}

    path = tmp_path / "checkpoint.pt"
    ScriptedEngine([0.1] * 5, [Checkpointer(path, 2, payload)]).run()
    assert saved == [2, 4, 5] and torch.load(path, weights_only=True)["engine"]["step"] == 5
    saved.clear()
    stopping = ScriptedEngine([0.5, 0.1, 0.1, 0.1], [Checkpointer(path, 10, payload), BestModel(patience=1)])
    stopping.run()
    assert saved == [2] and torch.load(path, weights_only=True)["engine"]["step"] == 2
    assert not list(tmp_path.glob(".checkpoint.pt.*"))  # no temporary file left


def test_atomic_save_leaves_the_old_file_when_saving_fails(tmp_path: Path) -> None:
    path = tmp_path / "x.pt"
    atomic_torch_save({"a": 1}, path)
    with pytest.raises(Exception):  # noqa: B017 - whatever torch raises for an unpicklable object
        atomic_torch_save({"a": lambda: None}, path)
    assert torch.load(path, weights_only=True) == {"a": 1} and [p.name for p in tmp_path.iterdir()] == [
        "x.pt"
    ]


def test_progress_hook_and_history_index_by_the_engines_unit() -> None:
    events: list[dict[str, Any]] = []
    history = History()
    ScriptedEngine([0.1, 0.2], [ProgressHook(events.append), history]).run()
    assert [(e["stage"], e["step"], e["steps"], e["metrics"]) for e in events] == [
        ("scripted", 1, 2, {"metric": 0.1, "loss": 1.0}),
        ("scripted", 2, 2, {"metric": 0.2, "loss": 1.0}),
    ]
    assert [h["step"] for h in history.logs] == [1.0, 2.0]
