from __future__ import annotations

from pathlib import Path

import pytest

from usqa.cli import main
from usqa.service.registry import CHAMPION, ModelRegistry

from .test_store import make_manifest


def test_models_list_show_promote_rollback(
    tmp_path: Path,
    sources: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    reg = tmp_path / "reg"
    registry = ModelRegistry(reg)
    registry.publish(make_manifest(), sources, alias=CHAMPION)
    registry.publish(make_manifest(), sources)
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
