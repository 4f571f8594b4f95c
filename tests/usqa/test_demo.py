from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from service.registry import CHAMPION, ModelRegistry
from usqa.cli import main


def test_demo_runs_every_stage_and_says_where_outputs_are(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--frames", "150", "--config", "debug"]) == 0
    printed = capsys.readouterr().out
    for stage in range(1, 6):
        assert f"[{stage}/5]" in printed
    assert str(out.resolve()) in printed
    assert (out / "contact_sheet.png").is_file()
    report = json.loads((out / "run" / "eval" / "report.json").read_text())
    assert report["task"] == "classify" and "controller" in report["curves"]
    assert ModelRegistry(out / "models").load("usqa-demo", CHAMPION).version == 1
    with (out / "scores" / "scores.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 120


def test_trainer_commands_do_not_load_torch_for_runtime_commands() -> None:
    import subprocess
    import sys

    code = "import sys; from usqa.cli import build_parser; build_parser(['serve']); print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
