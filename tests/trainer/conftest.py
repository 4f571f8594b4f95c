"""Shared fixtures: one tiny simulated data set (frames, masks, amenability), written once per session."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
import torch

from usqa.service.simulator import write_dataset

# Debug-sized networks gain nothing from a second thread, and on shared cores two threads can be 10x slower.
torch.set_num_threads(1)

FIXTURE_FRAMES = 96
FIXTURE_SUBJECTS = 8
FIXTURE_SIZE = 64


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("data") / "tiny"
    write_dataset(out, frames=FIXTURE_FRAMES, subjects=FIXTURE_SUBJECTS, seed=0, size=FIXTURE_SIZE, workers=1)
    return out


@pytest.fixture(scope="session")
def tiny_data_without_masks(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same frames with the mask column dropped (a classification-only data set)."""
    out = tmp_path_factory.mktemp("data") / "nomask"
    shutil.copytree(tiny_data / "frames", out / "frames")
    with (tiny_data / "labels.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    columns = [c for c in rows[0] if c != "mask"]
    with (out / "labels.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return out
