from __future__ import annotations

from pathlib import Path

import pytest

from experiments.datasets.ceiling import measure
from usqa.service.simulator import write_dataset


def test_ceiling_reports_every_rejection_ratio(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    out = tmp_path / "d"
    write_dataset(out, frames=160, subjects=16, seed=1, size=32, mix="evidence_loss", workers=1)
    ceiling = measure(out, seeds=(0,))
    assert set(ceiling.rows) == {"no rejection", "5 %", "15 %", "prevalence ratio"}
    assert 0 < ceiling.prevalence < 1
    assert "gain at the prevalence ratio" in ceiling.table()
