from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from usqa.contracts.frames import FrameSpec
from usqa.service.datasets import load_dataset
from usqa.service.datasets.real_frames import SOURCES, build, corrupt, pydicom_test_files, source_path


@pytest.fixture(scope="module")
def real_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("real") / "data"
    build(out, seed=0)
    return out


def test_every_source_lies_inside_the_installed_pydicom() -> None:
    for source in SOURCES:
        assert pydicom_test_files() in source_path(source).parents


def test_the_loader_accepts_the_set_and_splits_by_subject(real_set: Path) -> None:
    dataset = load_dataset(real_set)
    arrays = dataset.arrays(None, FrameSpec(size=32))
    assert len(arrays.labels) > 500 and set(np.unique(arrays.labels)) == {0, 1}
    with (real_set / "labels.csv").open() as f:
        rows = list(csv.DictReader(f))
    split_of: dict[str, set[str]] = {}
    for row in rows:
        split_of.setdefault(row["subject"], set()).add(row["split"])
    assert all(len(splits) == 1 for splits in split_of.values())
    assert {s for splits in split_of.values() for s in splits} == {"train", "val", "holdout"}


def test_non_amenable_frames_are_the_destroyed_ones(real_set: Path) -> None:
    with (real_set / "labels.csv").open() as f:
        rows = list(csv.DictReader(f))
    share = sum(row["amenable"] == "0" for row in rows) / len(rows)
    assert 0.15 <= share <= 0.35
    assert all((row["amenable"] == "0") == (row["severity"] == "destroying") for row in rows)


def test_same_seed_same_bytes(tmp_path: Path, real_set: Path) -> None:
    build(tmp_path / "again", seed=0)
    assert (tmp_path / "again" / "labels.csv").read_bytes() == (real_set / "labels.csv").read_bytes()
    assert (tmp_path / "again" / "frames" / "000100.png").read_bytes() == (
        real_set / "frames" / "000100.png"
    ).read_bytes()


def test_corruption_is_seeded() -> None:
    patch = np.random.default_rng(1).integers(0, 255, (32, 32), dtype=np.uint8)
    first = corrupt(patch, np.random.default_rng(5))
    second = corrupt(patch, np.random.default_rng(5))
    assert np.array_equal(first.image, second.image) and first.kind == second.kind
