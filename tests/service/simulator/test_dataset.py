from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

import usqa.service.simulator.dataset as dataset_module
from usqa.service.datasets import load_dataset
from usqa.service.datasets.splits import assign_splits
from usqa.service.simulator import NO_DEGRADATION, SimulationError, write_dataset
from usqa.service.simulator.dataset import COLUMNS, LABELS_FILE, frames_per_subject


def _rows(root: Path) -> list[dict[str, str]]:
    with (root / LABELS_FILE).open(newline="") as f:
        return list(csv.DictReader(f))


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_folder_is_a_valid_data_set(small_dataset: Path) -> None:
    dataset = load_dataset(small_dataset)
    assert len(dataset.records) == 90 and dataset.has_masks
    rows = _rows(small_dataset)
    assert tuple(rows[0]) == COLUMNS
    assert [r["frame"] for r in rows] == [f"frames/{i:06d}.png" for i in range(90)]


def test_frames_and_masks_are_what_the_labels_say(small_dataset: Path) -> None:
    for row in _rows(small_dataset):
        frame = cv2.imread(str(small_dataset / row["frame"]), cv2.IMREAD_UNCHANGED)
        mask = cv2.imread(str(small_dataset / row["mask"]), cv2.IMREAD_UNCHANGED)
        assert frame is not None and mask is not None
        assert frame.dtype == np.uint8 and frame.shape == (64, 64)
        assert mask.dtype == np.uint8 and mask.shape == (64, 64)
        assert set(np.unique(mask)) <= {0, 255}
        assert mask.any() == (row["label"] == "1")
        assert (row["degradation"] == NO_DEGRADATION) == (float(row["severity"]) == 0.0)
        assert len(row["severity"].split(".")[1]) == 3
        assert row["amenable"] in ("0", "1") and row["amenable_seg"] in ("0", "1")


def test_subjects_keep_one_preset_and_one_split(small_dataset: Path) -> None:
    rows = _rows(small_dataset)
    subjects = sorted({r["subject"] for r in rows})
    assert subjects == [f"s{i:03d}" for i in range(6)]
    presets = {s: {r["preset"] for r in rows if r["subject"] == s} for s in subjects}
    assert all(len(p) == 1 for p in presets.values())
    assert sorted(next(iter(p)) for p in presets.values()).count("linear_thyroid") == 2
    assert {r["subject"]: r["split"] for r in rows} == assign_splits(subjects, seed=3)


def test_the_same_seed_gives_the_same_bytes_whatever_the_worker_count(
    small_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real pool even for a small job: the point is that process boundaries change nothing.
    monkeypatch.setattr(dataset_module, "MIN_FRAMES_PER_WORKER", 1)
    parallel = write_dataset(
        tmp_path / "parallel", frames=90, subjects=6, seed=3, size=64, preset="all", workers=2
    )
    assert parallel.workers == 2
    assert _files(tmp_path / "parallel") == _files(small_dataset)


def test_another_seed_gives_other_frames(small_dataset: Path, tmp_path: Path) -> None:
    write_dataset(tmp_path / "other", frames=90, subjects=6, seed=4, size=64, preset="all", workers=1)
    ours, theirs = _files(small_dataset), _files(tmp_path / "other")
    assert ours.keys() == theirs.keys()
    assert ours["frames/000000.png"] != theirs["frames/000000.png"]


def test_the_summary_counts_what_was_written(tmp_path: Path) -> None:
    summary = write_dataset(tmp_path / "d", frames=20, subjects=2, seed=1, size=48, workers=1)
    rows = _rows(tmp_path / "d")
    assert summary.frames == len(rows) == 20 and summary.subjects == 2
    assert summary.with_organ == sum(r["label"] == "1" for r in rows)
    assert summary.amenable_seg == sum(r["amenable_seg"] == "1" for r in rows)
    assert summary.frames_per_second > 0
    assert "20 frames of 2 subjects" in summary.line() and str(tmp_path / "d") in summary.line()


def test_a_non_empty_folder_is_refused_unless_forced(tmp_path: Path) -> None:
    out = tmp_path / "d"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(SimulationError, match="not empty; pass --force"):
        write_dataset(out, frames=4, subjects=1, size=32, workers=1)
    assert (out / "notes.txt").exists()
    write_dataset(out, frames=4, subjects=1, size=32, workers=1, force=True)
    assert not (out / "notes.txt").exists() and len(_rows(out)) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"], "no staging or retired folders left"


def test_an_empty_folder_is_filled(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    write_dataset(tmp_path / "d", frames=3, subjects=1, size=32, workers=1)
    assert len(_rows(tmp_path / "d")) == 3


def test_an_interrupted_run_leaves_no_half_data_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(dataset_module, "_run_chunks", fail)
    with pytest.raises(KeyboardInterrupt):
        write_dataset(tmp_path / "d", frames=4, subjects=1, size=32, workers=1)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"frames": 0, "subjects": 1}, "frames must be at least 1"),
        ({"frames": 3, "subjects": 5}, "at least one frame per subject"),
        ({"frames": 3, "subjects": 1, "size": 8}, "size must be between"),
        ({"frames": 3, "subjects": 1, "preset": "cardiac"}, "unknown preset 'cardiac'"),
        ({"frames": 3, "subjects": 1, "degraded_fraction": -0.1}, "degraded fraction"),
        ({"frames": 3, "subjects": 1, "workers": 0}, "workers must be at least 1"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_written(
    tmp_path: Path, arguments: dict[str, object], message: str
) -> None:
    with pytest.raises(SimulationError, match=message):
        write_dataset(tmp_path / "d", **arguments)  # type: ignore[arg-type]
    assert not (tmp_path / "d").exists()


def test_frames_are_shared_evenly_between_subjects() -> None:
    assert frames_per_subject(10, 3) == [4, 3, 3]
    assert sum(frames_per_subject(1000, 7)) == 1000
