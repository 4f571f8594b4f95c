from __future__ import annotations

import csv
from pathlib import Path

import pytest

from usqa.service.simulator.stats import ALL_FRAMES, count_by_kind, main, markdown_table


def test_counts_follow_the_labels(small_dataset: Path) -> None:
    with (small_dataset / "labels.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    counts = count_by_kind(rows)
    assert (
        counts[ALL_FRAMES].frames == len(rows) == sum(c.frames for k, c in counts.items() if k != ALL_FRAMES)
    )
    assert counts[ALL_FRAMES].not_amenable_seg == sum(r["amenable_seg"] == "0" for r in rows)
    assert counts["none"].not_amenable == 0
    table = markdown_table(counts)
    assert table.splitlines()[0].startswith("| degradation |") and "| all frames |" in table


def test_the_command_prints_the_table(small_dataset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(small_dataset)]) == 0
    assert "| partial_view |" in capsys.readouterr().out


def test_the_command_needs_a_data_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path)]) == 2
    assert "no labels.csv" in capsys.readouterr().err
