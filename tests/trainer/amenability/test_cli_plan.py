"""`usqa train`'s plan: --plan-only prints it without training, plan.json is written, overrides and resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from usqa.cli import main
from usqa.contracts.training import MSG_UNKNOWN, BackboneConfig
from usqa.trainer.heating.backbone_io import save_backbone
from usqa.trainer.networks import ResNetBackbone, seeded_init


def test_plan_only_prints_the_plan_without_a_run(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", "--plan-only", "--data", str(tiny_data), "--task", "classify", "--plan", "width=8"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "plan (budget default)" in out and "majority class" in out
    assert "input_size" in out and "the size trial was skipped" in out
    assert "override" in out.split("width", 1)[1].splitlines()[0]
    assert list(tmp_path.iterdir()) == []
    assert main(["train", "--plan-only", "--data", str(tiny_data), "--task", "segment"]) == 0
    out = capsys.readouterr().out
    assert "target" in out and "trial" not in out  # segmentation: the target's rule, no trial


def test_the_run_writes_and_honours_its_plan(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    argv = ["train", "--data", str(tiny_data), "--config", "debug", "--out", str(run), "--quiet"]
    assert main([*argv, "--plan", "input_size=64", "--plan", "supervised_steps=2"]) == 0
    assert "plan (budget debug)" in capsys.readouterr().out
    plan = json.loads((run / "plan.json").read_text())
    config = json.loads((run / "config.json").read_text())
    assert plan["plan"]["input_size"] == 64 and plan["sources"]["input_size"] == "override"
    assert config["frame"]["size"] == 64 and config["supervised"]["steps"] == 2
    assert len(config["backbone"]["widths"]) == plan["plan"]["depth"] == 3
    # a resume reads plan.json: the same config, whatever the flags say
    assert main([*argv, "--resume", "--plan", "input_size=32"]) == 0
    assert json.loads((run / "config.json").read_text()) == config


def test_a_bad_override_is_a_usage_error(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", "--plan-only", "--data", str(tiny_data), "--plan", "size=64"]
    assert main(argv) == 2
    assert MSG_UNKNOWN.format(key="size") in capsys.readouterr().err


def test_a_heated_backbone_sets_the_input_size_not_the_other_way_round(
    tiny_data: Path, tmp_path: Path
) -> None:
    heated = BackboneConfig(widths=(4, 8, 8))
    with seeded_init(0):
        backbone = ResNetBackbone(heated)
    path = save_backbone(tmp_path / "b.pt", backbone.state_dict(), heated, {"frame_spec": {"size": 64}})
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
    plan = json.loads((run / "plan.json").read_text())
    config = json.loads((run / "config.json").read_text())
    assert (
        plan["plan"]["input_size"] == 64 and config["frame"]["size"] == 64
    )  # the debug budget's rule says 32
    assert config["backbone"]["widths"] == [4, 8, 8]


def test_a_run_from_before_plans_resumes_from_its_config(tiny_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    argv = ["train", "--data", str(tiny_data), "--config", "debug", "--out", str(run), "--quiet"]
    assert main([*argv, "--plan", "input_size=64"]) == 0
    (run / "plan.json").unlink()
    config = json.loads((run / "config.json").read_text())
    assert main([*argv, "--resume"]) == 0  # re-planning would say 32 px, and the checkpoint would not fit
    assert json.loads((run / "config.json").read_text()) == config
