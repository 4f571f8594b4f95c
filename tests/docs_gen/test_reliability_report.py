"""The page `docs_gen.reliability_report` writes from the reliability suite's figures (merged per section and test)."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from docs_gen.reliability_report import NOT_MEASURED, main, read_runs, render
from docs_gen.reliability_targets import HIGHLIGHTS, SECTIONS, TARGETS

from ..reliability.conftest import FigureBook, Figures

WRITTEN = datetime.datetime(2026, 1, 2, 3, 4, tzinfo=datetime.UTC)


def entry(figures: Figures, outcome: str = "passed") -> dict[str, object]:
    return {"outcome": outcome, "duration_s": 1.5, "finished": "2026-01-02T03:00:00+00:00",
            "figures": figures.values, "notes": figures.notes}  # fmt: skip


def test_figures_add_up_within_a_test_and_merge_per_test(tmp_path: Path) -> None:
    first = Figures()
    first.count("decoders.cases", 10)
    first.count("decoders.cases", 5)
    first.count("decoders.crashes", False)
    first.peak("decoders.slowest_case_ms", 3.0)
    first.peak("decoders.slowest_case_ms", 2.0)
    first.note("a caveat")
    first.note("a caveat")
    assert first.values["decoders.cases"] == {"value": 15, "aggregate": "sum"}
    assert first.values["decoders.crashes"]["value"] == 0 and first.notes == ["a caveat"]
    with pytest.raises(ValueError, match="both"):
        first.peak("decoders.cases", 1)

    book = FigureBook(tmp_path, "full")
    book.merge("malformed_input", "test_a", entry(first))
    second = Figures()
    second.count("decoders.cases", 7)
    path = book.merge("malformed_input", "test_b", entry(second))
    book.merge("malformed_input", "test_b", entry(second))  # a rerun replaces, never doubles
    document = json.loads(path.read_text())
    assert set(document["tests"]) == {"test_a", "test_b"} and document["mode"] == "full"
    assert [p.name for p in tmp_path.iterdir()] == ["malformed_input.json"]  # no temporary left behind
    run = read_runs(tmp_path)["malformed_input"]
    assert run.figure(["decoders.cases"]) == 22
    assert run.figure(["decoders.slowest_case_ms"]) == 3.0
    with pytest.raises(ValueError, match="unknown reliability section"):
        book.merge("elsewhere", "test_c", entry(second))


def test_the_page_shows_targets_gaps_and_sections_not_measured(tmp_path: Path) -> None:
    book = FigureBook(tmp_path, "full")
    figures = Figures()
    figures.count("decoders.cases", 1500)
    figures.count("http.cases", 400)
    figures.count("ws.cases", 50)  # 1,950 in all: under the 2,000 target
    figures.count("http.5xx", 0)
    figures.peak("decoders.slowest_case_ms", 12.5)
    figures.count("http.status.404", 3)
    figures.note("known gap, 3 cases: a cause")
    book.merge("malformed_input", "tests/reliability/test_x.py::test_ok", entry(figures))
    book.merge("malformed_input", "tests/reliability/test_x.py::test_bad", entry(Figures(), "failed"))
    page = render(read_runs(tmp_path), written=WRITTEN)

    assert "| Cases run (decoders + HTTP + WebSocket) | 1,950 | ≥ 2,000 | **not met** |" in page
    assert "| HTTP responses 5xx (other than a documented 503) | 0 | = 0 | met |" in page
    assert "| Slowest decoder case | 12.5 ms | ≤ 2,000 ms | met |" in page
    assert "| Slowest refusal of an absurd declared size | n/a | ≤ 100 ms | not measured |" in page
    assert "| `http.status.404` | 3 |" in page
    assert "- known gap, 3 cases: a cause" in page
    assert "- `tests/reliability/test_x.py::test_bad`" in page
    assert "page written 2026-01-02 03:04 UTC" in page
    for section in SECTIONS[1:]:
        assert f"{section.title}](#" in page
    assert page.count(f"*{NOT_MEASURED.capitalize()}.*") == len(SECTIONS) - 1
    assert set(TARGETS) == {section.key for section in SECTIONS}


def test_a_section_without_targets_lists_its_figures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(TARGETS, "load_with_swaps", ())
    monkeypatch.setitem(HIGHLIGHTS, "load_with_swaps", ())
    figures = Figures()
    figures.peak("p99_steady_ms", 8.5)
    FigureBook(tmp_path, "full").merge("load_with_swaps", "t", entry(figures))
    page = render(read_runs(tmp_path), written=WRITTEN)
    assert "| [2. Load with model swaps](#2-load-with-model-swaps) | no targets set | 1 passed |" in page
    assert "No targets are set for this section yet" in page and "| `p99_steady_ms` | 8.5 |" in page


def test_the_report_command_writes_the_page_or_says_why_not(tmp_path: Path) -> None:
    out = tmp_path / "docs" / "reliability.md"
    assert main(["--runs", str(tmp_path / "empty"), "--out", str(out)]) == 1 and not out.exists()
    figures = Figures()
    figures.count("ws.cases", 3)
    FigureBook(tmp_path / "runs", "full").merge("malformed_input", "t", entry(figures))
    assert main(["--runs", str(tmp_path / "runs"), "--out", str(out)]) == 0
    assert out.read_text().startswith("# Reliability")
