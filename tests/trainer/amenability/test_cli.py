"""`usqa train` / `usqa evaluate` end to end on the debug config, resume, and user mistakes (exit 2)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from usqa.cli import main
from usqa.contracts.training import ALGOS, REWARDS, BackboneConfig
from usqa.trainer.amenability.cli import MSG_NO_DATA
from usqa.trainer.data import MSG_NO_MASKS
from usqa.trainer.networks import ResNetBackbone, seeded_init

RUN_FILES = (
    "config.json",
    "plan.json",
    "checkpoint.pt",
    "metrics.jsonl",
    "model.pt",
    "baseline.pt",
    "supervised.pt",
)


@pytest.mark.parametrize("task", ["classify", "segment"])
@pytest.mark.parametrize("reward", REWARDS)
@pytest.mark.parametrize("algo", ALGOS)
def test_train_debug_run_writes_a_well_formed_run(
    task: str, reward: str, algo: str, tiny_data: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    argv = ["train", "--data", str(tiny_data), "--task", task, "--reward", reward, "--algo", algo]
    assert main([*argv, "--config", "debug", "--out", str(run), "--quiet"]) == 0
    for name in RUN_FILES:
        assert (run / name).is_file(), name
    config = json.loads((run / "config.json").read_text())
    assert (config["task"], config["reward"]["kind"], config["algo"]) == (task, reward, algo)
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["episode"] for r in lines if r["stage"] == "amenability"] == [1, 2, 3]
    assert lines[0]["stage"] == "supervised"  # the predictor trained before Algorithm 1
    assert all(0.0 <= r["selected_fraction"] <= 1.0 for r in lines if r["stage"] != "supervised")
    model = torch.load(run / "model.pt", weights_only=False)
    assert set(model) == {"config", "controller", "predictor"}


@pytest.mark.parametrize("task", ["classify", "segment"])
def test_evaluate_writes_the_documented_report(task: str, tiny_data: Path, tmp_path: Path) -> None:
    run, out = tmp_path / "run", tmp_path / "eval"
    common = ["--data", str(tiny_data)]
    assert main(["train", *common, "--task", task, "--config", "debug", "--out", str(run), "--quiet"]) == 0
    assert main(["evaluate", "--run", str(run), *common, "--out", str(out), "--resamples", "5"]) == 0
    report = json.loads((out / "report.json").read_text())
    for key in ("task", "metric", "rejection_ratios", "curves", "kappa", "contingency"):
        assert key in report
    assert report["task"] == task and report["metric"] == {"classify": "accuracy", "segment": "dice"}[task]
    assert report["rejection_ratios"] == pytest.approx([0.05 * i for i in range(9)])
    assert {"controller", "random", "confidence", "baseline"} <= set(report["curves"])
    assert all(len(c["mean"]) == 9 for c in report["curves"].values())
    assert (out / "curves.png").stat().st_size > 0 and (out / "contingency.png").stat().st_size > 0


def test_missing_data_folder_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere"
    assert main(["train", "--data", str(missing), "--config", "debug", "--out", str(tmp_path / "r")]) == 2
    assert MSG_NO_DATA.format(path=missing) in capsys.readouterr().err


def test_segmenting_a_data_set_without_masks_is_a_usage_error(
    tiny_data_without_masks: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", "--data", str(tiny_data_without_masks), "--task", "segment", "--config", "debug"]
    assert main([*argv, "--out", str(tmp_path / "r"), "--quiet"]) == 2
    assert MSG_NO_MASKS.format(root=tiny_data_without_masks) in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="asks for CUDA on a machine without it")
def test_cuda_without_a_gpu_is_an_error_not_a_silent_cpu(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", "--data", str(tiny_data), "--config", "debug", "--device", "cuda"]
    assert main([*argv, "--out", str(tmp_path / "r"), "--quiet"]) == 2
    assert "cuda" in capsys.readouterr().err


def test_an_existing_run_needs_resume(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", "--data", str(tiny_data), "--config", "debug", "--out", str(tmp_path / "r"), "--quiet"]
    assert main(argv) == 0
    assert main(argv) == 2
    assert "--resume" in capsys.readouterr().err
    assert main([*argv, "--resume"]) == 0


def test_backbone_checkpoint_sets_the_architecture_and_initialises_the_networks(
    tiny_data: Path, tmp_path: Path
) -> None:
    heated = BackboneConfig(widths=(4, 8, 8))
    with seeded_init(3):
        backbone = ResNetBackbone(heated)
    path = tmp_path / "backbone.pt"
    torch.save(
        {"format": "usqa-backbone/1", "backbone": backbone.state_dict(), "config": asdict(heated)}, path
    )
    run = tmp_path / "run"
    argv = [
        "train",
        "--data",
        str(tiny_data),
        "--config",
        "debug",
        "--backbone",
        str(path),
        "--episodes",
        "1",
    ]
    assert main([*argv, "--out", str(run), "--quiet", "--no-baseline"]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["backbone"]["widths"] == [4, 8, 8] and config["controller"]["backbone"]["widths"] == [
        4,
        8,
        8,
    ]
    assert (
        main([*argv, "--out", str(tmp_path / "bad"), "--task", "segment", "--backbone", str(tmp_path)]) == 2
    )
