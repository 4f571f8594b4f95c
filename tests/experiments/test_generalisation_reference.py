"""The supervised reference (experiments/generalisation/reference.py): its config, its jobs, one debug run."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from experiments.generalisation.benchmark import RESULT_FILE, TRAIN_FILE, _done, parse, plan, train_job
from experiments.generalisation.methods import METHODS, REFERENCE, SUPERVISED_REFERENCE, method_config
from experiments.generalisation.reference import reference_config
from usqa.contracts.training import TrainConfig
from usqa.service.simulator import write_dataset
from usqa.trainer.amenability.run import RunError, train
from usqa.trainer.amenability.run_folder import SUPERVISED_FILE
from usqa.trainer.amenability.supervised_stage import stage_identity


@pytest.mark.parametrize("task", ["classify", "segment"])
def test_the_reference_is_the_budgets_network_trained_the_ordinary_way(task: str) -> None:
    runs = method_config(
        METHODS[0], budget="benchmark", task=task, seed=2, frame_size=64, train_baseline=True
    )
    reference = reference_config(budget="benchmark", task=task, seed=2, frame_size=64)
    same = ("backbone", "unet", "frame", "batch_size", "predictor_loss", "weight_decay", "seed", "task")
    assert all(getattr(reference, name) == getattr(runs, name) for name in same)
    # The reference is the stage every method's run would train: they share it.
    assert stage_identity(reference) == stage_identity(runs)
    assert (reference.recipe.augment, reference.recipe.balanced_sampling) == ("ultrasound", False)
    # To convergence, with early stopping: about 60 epochs of a simulator set's 1,680 training frames (classify).
    stage = reference.supervised
    assert (stage.steps, stage.eval_every, stage.patience) == ((3000 if task == "classify" else 2000), 100, 5)
    assert stage.steps * reference.batch_size / 1680 >= (50 if task == "classify" else 15)
    assert (stage.schedule, reference.name) == ("one_cycle", "benchmark-supervised-reference")
    assert not reference.train_baseline
    debug = reference_config(budget="debug", task=task, seed=0, frame_size=32)
    assert debug.supervised.steps <= 8 and debug.frame.size == 32


def test_every_data_set_task_and_seed_gets_one_reference_job(tmp_path: Path) -> None:
    args = parse(["--out", str(tmp_path), "--seeds", "0", "1", "--methods", REFERENCE])
    dirs = {"prostate_evidence_loss": tmp_path / "d", "real_frames": tmp_path / "r"}
    jobs = [j for j in plan(args, dirs) if j["method"] == SUPERVISED_REFERENCE]
    assert {(j["dataset"], j["task"], j["seed"]) for j in jobs} == {
        (data, task, seed)
        for data, tasks in (
            ("prostate_evidence_loss", ("classify", "segment")),
            ("real_frames", ("classify",)),
        )
        for task in tasks
        for seed in (0, 1)
    }
    assert all(j["run_dir"].endswith(f"{j['task']}/{SUPERVISED_REFERENCE}/seed{j['seed']}") for j in jobs)


def test_a_debug_reference_trains_scores_and_counts_as_done(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_dataset(data, frames=96, subjects=8, seed=3, size=32, mix="evidence_loss", workers=1)
    args = parse(["--quick", "--out", str(tmp_path / "out"), "--seeds", "0", "--tasks", "classify"])
    (job,) = [j for j in plan(args, {"prostate_evidence_loss": data}) if j["method"] == SUPERVISED_REFERENCE]
    train_job(job)
    result = json.loads((Path(job["run_dir"]) / RESULT_FILE).read_text())
    assert result["method"] == SUPERVISED_REFERENCE and 0.0 <= result["holdout"]["metric"] <= 1.0
    assert result["holdout"]["frames"] > 0 and result["seconds"]["supervised"] > 0
    assert 0 < result["stage"]["steps"] <= job["config"]["supervised"]["steps"]
    assert _done(job, TRAIN_FILE) and _done(job, RESULT_FILE)
    # A reference is the stage alone: Algorithm 1's settings changing later does not make it stale.
    assert _done({**job, "config": {**job["config"], "episodes": 99}}, TRAIN_FILE)
    assert not _done({**job, "config": {**job["config"], "seed": 5}}, TRAIN_FILE)


def test_a_method_continues_from_the_references_stage_and_a_different_stage_is_refused(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    write_dataset(data, frames=96, subjects=8, seed=3, size=32, mix="evidence_loss", workers=1)
    args = parse(["--quick", "--out", str(tmp_path / "out"), "--seeds", "0", "--tasks", "classify"])
    jobs = plan(args, {"prostate_evidence_loss": data})
    (reference,) = [j for j in jobs if j["method"] == SUPERVISED_REFERENCE]
    (method,) = [j for j in jobs if j["method"] == REFERENCE]
    assert method["shared_stage"] == str(Path(reference["run_dir"]) / SUPERVISED_FILE)
    train_job(reference)
    shared = torch.load(method["shared_stage"], weights_only=False)["predictor"]
    train_job(method)
    copied = torch.load(Path(method["run_dir"]) / SUPERVISED_FILE, weights_only=False)
    assert copied["shared_from"] == method["shared_stage"]
    assert all(torch.equal(copied["predictor"][k], v) for k, v in shared.items())
    # The method's own stage, trained here, gives the same predictor: sharing changes nothing but the time.
    config = TrainConfig.from_dict(method["config"])
    train(config, data, tmp_path / "own", progress=False)
    own = torch.load(tmp_path / "own" / SUPERVISED_FILE, weights_only=False)["predictor"]
    assert all(torch.equal(own[k], v) for k, v in shared.items())
    other = replace(config, seed=1)
    with pytest.raises(RunError, match="seed"):
        train(other, data, tmp_path / "other", progress=False, shared_stage=Path(method["shared_stage"]))
