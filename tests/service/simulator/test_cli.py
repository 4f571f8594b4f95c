from __future__ import annotations

from pathlib import Path

import pytest

from usqa.cli import main


def _simulate(out: Path, *extra: str) -> int:
    return main(
        [
            "simulate",
            "--out",
            str(out),
            "--frames",
            "12",
            "--subjects",
            "3",
            "--size",
            "48",
            "--workers",
            "1",
            *extra,
        ]
    )


def test_simulate_writes_a_data_set_and_prints_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _simulate(tmp_path / "d", "--preset", "all", "--seed", "2") == 0
    out = capsys.readouterr().out.strip()
    assert len(out.splitlines()) == 1
    assert (
        out.startswith("simulated 12 frames of 3 subjects")
        and "frames/s" in out
        and str(tmp_path / "d") in out
    )
    assert (tmp_path / "d" / "labels.csv").is_file()


def test_simulate_refuses_a_non_empty_folder_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _simulate(tmp_path / "d") == 0
    capsys.readouterr()
    assert _simulate(tmp_path / "d") == 2
    err = capsys.readouterr().err
    assert err.startswith("usqa simulate:") and "is not empty; pass --force" in err
    assert _simulate(tmp_path / "d", "--force") == 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--frames", "0"], "frames must be at least 1"),
        (["--degraded-fraction", "1.5"], "degraded fraction must be between 0 and 1"),
        (["--size", "4000"], "size must be between"),
    ],
)
def test_bad_values_exit_2_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    assert _simulate(tmp_path / "d", *extra) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_an_unknown_preset_is_an_argument_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _simulate(tmp_path / "d", "--preset", "cardiac")
    assert exit_info.value.code == 2
    assert "invalid choice: 'cardiac'" in capsys.readouterr().err
