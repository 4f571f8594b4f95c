from __future__ import annotations

import csv
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from usqa.cli import main
from usqa.service.inference.offline import CSV_COLUMNS, PLOT_NAME, PLOT_SIZE, score_source

from ..conftest import FIXTURE_MODEL_NAME, SEGMENT_MODEL_NAME, dicom_bytes, frame_of_level, make_settings


def _read(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_a_dicom_cine_gives_one_row_per_frame_and_a_plot(registry_root: Path, tmp_path: Path) -> None:
    levels = [120] * 4 + [10] * 6 + [0] * 4
    source = tmp_path / "cine.dcm"
    # The last frames are black (probe lifted): no signal.
    frames = [
        frame_of_level(level, shape=(64, 80), seed=i, spread=40 if level else 0)
        for i, level in enumerate(levels)
    ]
    source.write_bytes(dicom_bytes(frames))
    report = score_source(
        source, tmp_path / "out", make_settings(registry_root), name=FIXTURE_MODEL_NAME, ref="champion"
    )
    rows = _read(report.csv_path)
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert [r["frame_id"] for r in rows] == [f"cine.dcm#{i}" for i in range(len(levels))]
    assert [r["amenable"] for r in rows] == ["1" if level > 50 else "0" for level in levels]
    assert report.frames == len(levels) and report.amenable_fraction == pytest.approx(4 / len(levels))
    guidance = [r["guidance"] for r in rows]
    assert guidance[0] == "good" and "adjust" in guidance and guidance[-1] == "no_signal"
    assert all(r["label"] in ("absent", "present") for r in rows)
    plot = cv2.imread(str(report.plot_path))
    assert plot.shape == (PLOT_SIZE[1], PLOT_SIZE[0], 3) and plot.std() > 10


def test_the_cli_scores_an_image_folder_with_a_segmentation_model(
    registry_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(5):
        image = np.zeros((60, 60), dtype=np.uint8)
        image[10 : 20 + 5 * i, 10:40] = 220
        cv2.imwrite(str(folder / f"f{i:02d}.png"), image)
    (folder / ".hidden.png").write_bytes(b"skipped")
    out = tmp_path / "out"
    code = main(
        [
            "score",
            str(folder),
            "--out",
            str(out),
            "--registry",
            str(registry_root),
            "--model",
            SEGMENT_MODEL_NAME,
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert f"scored 5 frames with {SEGMENT_MODEL_NAME} version 1" in printed
    # per-verdict counts, each frame by itself, adding up to the frames; and the pass line's promise
    counts = re.search(r"verdicts: (.*)", printed)
    assert counts is not None
    assert sum(int(part.rsplit(" ", 1)[1]) for part in counts.group(1).split(", ")) == 5
    assert "pass line: not certified" in printed
    rows = _read(out / "scores.csv")
    areas = [float(r["mask_area_fraction"]) for r in rows]
    assert areas == sorted(areas) and areas[0] > 0
    assert float(rows[0]["box_width"]) == pytest.approx(30, abs=2)
    assert (out / PLOT_NAME).exists()


def test_the_cli_scores_a_video(registry_root: Path, tmp_path: Path) -> None:
    video = tmp_path / "sweep.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(6):
        writer.write(cv2.cvtColor(frame_of_level(30 + 15 * i, shape=(48, 64), seed=i), cv2.COLOR_GRAY2BGR))
    writer.release()
    out = tmp_path / "out"
    assert (
        main(
            [
                "score",
                str(video),
                "--out",
                str(out),
                "--registry",
                str(registry_root),
                "--model",
                FIXTURE_MODEL_NAME,
            ]
        )
        == 0
    )
    scores = [float(r["score"]) for r in _read(out / "scores.csv")]
    assert len(scores) == 6 and scores == sorted(scores)


def test_the_cli_explains_a_missing_source_or_model(
    registry_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            ["score", str(tmp_path / "nope"), "--out", str(tmp_path / "o"), "--registry", str(registry_root)]
        )
        == 2
    )
    assert "does not exist" in capsys.readouterr().err
    image = tmp_path / "one.png"
    cv2.imwrite(str(image), frame_of_level(50))
    code = main(
        ["score", str(image), "--out", str(tmp_path / "o"), "--registry", str(registry_root), "--model", "x"]
    )
    assert code == 2 and "no model named 'x'" in capsys.readouterr().err
