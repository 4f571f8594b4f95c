from __future__ import annotations

from pathlib import Path

import pytest

from usqa.cli import main
from usqa.service.registry import CHAMPION, ModelRegistry

from ..conftest import fixture_manifest, write_graphs
from .test_store import make_manifest


def test_models_list_show_promote_rollback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reg = tmp_path / "reg"
    registry = ModelRegistry(reg)
    graphs = write_graphs(tmp_path / "graphs", "classify")
    registry.publish(fixture_manifest("prostate", "classify"), graphs, alias=CHAMPION)
    registry.publish(fixture_manifest("prostate", "classify"), graphs)
    assert main(["models", "--registry", str(reg), "list"]) == 0
    out = capsys.readouterr().out
    assert "prostate" in out and "champion" in out
    assert main(["models", "--registry", str(reg), "promote", "prostate", "2"]) == 0
    assert "champion -> version 2" in capsys.readouterr().out
    assert main(["models", "--registry", str(reg), "show", "prostate"]) == 0
    assert '"version": 2' in capsys.readouterr().out
    assert main(["models", "--registry", str(reg), "rollback", "prostate"]) == 0
    assert "rolled back to version 1" in capsys.readouterr().out
    assert main(["models", "--registry", str(reg), "rollback", "prostate"]) == 2
    assert "no earlier 'champion'" in capsys.readouterr().err
    assert main(["models", "--registry", str(reg), "show", "nothing"]) == 2


def test_promoting_a_version_that_cannot_load_is_refused_and_the_champion_stays(
    tmp_path: Path, sources: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    reg = tmp_path / "reg"
    registry = ModelRegistry(reg)
    graphs = write_graphs(tmp_path / "graphs", "classify")
    registry.publish(fixture_manifest("prostate", "classify"), graphs, alias=CHAMPION)
    registry.publish(make_manifest(), sources)  # hashes match, the graphs are random bytes
    assert main(["models", "--registry", str(reg), "promote", "prostate", "2"]) == 2
    assert "version 2 cannot be served, so 'champion' stays where it was" in capsys.readouterr().err
    assert registry.resolve("prostate", CHAMPION) == 1
