"""The transfer study's smoke run: every starting point, mode and N of the quick budget, the page block."""

from __future__ import annotations

import json
from pathlib import Path

from docs_gen.blocks import block_body
from experiments.transfer.study import QUICK, RESULTS_FILE, STARTS, main


def test_the_quick_study_writes_rows_figures_and_the_page_block(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    page = (Path(__file__).parents[2] / "docs" / "transfer.md").read_text()
    (docs / "transfer.md").write_text(page)
    assert main(["--quick", "--out", str(tmp_path / "work"), "--docs", str(docs)]) == 0
    rows = json.loads((tmp_path / "work" / RESULTS_FILE).read_text())["rows"]
    seen = {(r["start"], r["mode"], r["labels"]) for r in rows}
    for n in QUICK.labels:
        assert {(s, m, n) for s in STARTS for m in ("probe", "finetune")} <= seen
        assert {("champion", "controller", n), ("random", "controller", n)} <= seen
    body = block_body((docs / "transfer.md").read_text(), "transfer")
    assert "Smoke run" in body and "img/transfer-quick-controller.png" in body
    assert all(
        (docs / "img" / f"transfer-quick-{m}.png").is_file() for m in ("probe", "finetune", "controller")
    )
