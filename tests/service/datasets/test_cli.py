from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from usqa.cli import main

from .conftest import WriteFolder
from .test_labels import good_rows


def test_inspect_prints_counts_and_writes_a_contact_sheet(
    write_folder: WriteFolder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_folder(good_rows())
    sheet = tmp_path / "out" / "sheet.png"
    assert main(["inspect", str(root), "--sheet", str(sheet), "--max-frames", "5"]) == 0
    out = capsys.readouterr().out
    assert "12 frames, 6 subjects" in out
    for split in ("train", "val", "holdout"):
        assert f"  {split}" in out
    assert "label 1: " in out and "amenable 0: " in out and "subjects: " in out
    image = cv2.imread(str(sheet))
    assert image is not None and image.shape[1] == 5 * 128


def test_inspect_reports_every_problem_and_exits_1(
    write_folder: WriteFolder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = good_rows()
    rows[0]["label"] = "x"
    rows[2]["frame"] = "missing.png"
    root = write_folder(rows)
    assert main(["inspect", str(root), "--sheet", str(tmp_path / "s.png")]) == 1
    err = capsys.readouterr().err
    assert "2 problem(s)" in err and "line 2, label" in err and "line 4, frame" in err
    assert not (tmp_path / "s.png").exists()
