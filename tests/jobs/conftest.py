"""Fixtures of the retraining tests: simulated data-set archives and the running topology."""

from __future__ import annotations

import csv
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.topology import Topology, free_port, zip_folder
from usqa.service.simulator import write_dataset

FRAMES = 240
SUBJECTS = 12
# A budget that learns something in seconds (debug networks at 32 px), so a worse challenger is really worse.
OVERRIDES = {"train_baseline": False, "episodes": 10, "steps_per_episode": 5, "batch_size": 16}


def _simulate(folder: Path, seed: int) -> Path:
    write_dataset(folder, frames=FRAMES, subjects=SUBJECTS, seed=seed, size=64, preset="transrectal_prostate")
    return folder


def invert_labels(source: Path, target: Path) -> Path:
    """The same frames with every classification label flipped: what a model should learn worse from."""
    shutil.copytree(source, target)
    with (source / "labels.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    with (target / "labels.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "label": str(1 - int(row["label"]))})
    return target


@pytest.fixture(scope="session")
def archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """`good`: a simulated data set; `inverted`: the same with flipped labels (zip archives)."""
    root = tmp_path_factory.mktemp("archives")
    good = _simulate(root / "good", seed=3)
    inverted = invert_labels(good, root / "inverted")
    return {
        "good": zip_folder(good, root / "good.zip"),
        "inverted": zip_folder(inverted, root / "inverted.zip"),
    }


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    """A private redis-server, two API processes and one worker sharing a registry, data and job roots."""
    topo = Topology(tmp_path_factory.mktemp("topology"), redis_port=free_port())
    try:
        topo.start_redis()
        topo.start_api()
        topo.start_api()
        topo.start_worker()
        yield topo
    finally:
        topo.stop()
