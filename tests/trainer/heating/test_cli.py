from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from usqa import cli


def test_heat_then_finetune_from_the_command_line(
    tmp_path: Path, multipreset_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "heat"
    args = ["heat", "--data", str(multipreset_data), "--config", "debug", "--out", str(run), "--quiet"]
    assert (
        cli.main([*args, "--noise", "uniform", "--grid", "16", "--loss", "baseline", "--tau-image", "0.5"])
        == 0
    )
    config = json.loads((run / "config.json").read_text())
    assert config["mask"]["noise"] == "uniform" and config["mask"]["grid"] == 16
    assert config["loss"] == "baseline" and config["policy"]["tau_image"] == 0.5
    assert "heated backbone" in capsys.readouterr().out
    assert cli.main(args) == 2  # the run exists: --resume or another --out
    assert "--resume" in capsys.readouterr().err
    assert cli.main([*args, "--resume", "--grid", "8"]) == 2  # resuming cannot change what is trained
    assert "different config (mask differ)" in capsys.readouterr().err
    assert json.loads((run / "config.json").read_text())["mask"]["grid"] == 16
    assert cli.main([*args, "--resume", "--steps", "6"]) == 0
    assert json.loads((run / "metrics.json").read_text())["steps"] == 6
    steps = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 6

    tuned = tmp_path / "ft"
    ft = ["finetune", "--data", str(multipreset_data), "--config", "debug", "--out", str(tuned), "--quiet"]
    assert cli.main([*ft, "--backbone", str(run)]) == 0
    assert (tuned / "backbone.pt").is_file()
    assert cli.main([*ft[:-3], "--out", str(tmp_path / "normal"), "--quiet", "--augment", "cutmix"]) == 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--blur-kernel", "4"], "odd"),
        (["--grid", "64"], "frame size"),
        (["--tau-dataset", "1.5"], "--tau-dataset"),
        (["--device", "cuda:7"], "CUDA"),
        (["--classes", "preset_label", "--data", "/nonexistent"], "does not exist"),
    ],
)
def test_user_mistakes_exit_2(
    tmp_path: Path, multipreset_data: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    args = [
        "heat",
        "--data",
        str(multipreset_data),
        "--config",
        "debug",
        "--out",
        str(tmp_path / "r"),
        "--quiet",
    ]
    if "cuda" in extra[-1] and torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    assert cli.main([*args, *extra]) == 2
    assert message in capsys.readouterr().err


def test_finetune_refuses_a_file_that_is_no_backbone(
    tmp_path: Path, multipreset_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "x.pt").write_bytes(b"nope")
    args = ["finetune", "--data", str(multipreset_data), "--config", "debug", "--out", str(tmp_path / "r")]
    assert cli.main([*args, "--backbone", str(tmp_path / "x.pt"), "--quiet"]) == 2
    assert "cannot read" in capsys.readouterr().err
