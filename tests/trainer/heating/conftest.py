"""A tiny heterogeneous data set: three 'presets' with their own geometry and grey levels, an organ in ~half
of the frames, written once per session (PNGs and a labels.csv with a `preset` column, like the simulator's)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

PRESETS = ("sector_a", "linear_b", "curved_c")
SIZE = 32


def write_multipreset_dataset(root: Path, frames: int = 72, subjects: int = 12, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    (root / "frames").mkdir(parents=True, exist_ok=True)
    splits = ["train"] * (subjects - 6) + ["val"] * 3 + ["holdout"] * 3
    rows = []
    yy, xx = np.mgrid[:SIZE, :SIZE]
    for i in range(frames):
        subject = i % subjects
        preset = PRESETS[subject % 3]
        level = (60, 110, 160)[subject % 3]
        image = rng.normal(level, 20, (SIZE, SIZE))
        if preset == "sector_a":
            image[np.abs(xx - SIZE / 2) > yy * 0.8] = 0
        elif preset == "curved_c":
            image[(xx - SIZE / 2) ** 2 + (yy + 8) ** 2 < 100] = 0
        present = bool(rng.random() < 0.5)
        if present:
            cy, cx = rng.integers(10, SIZE - 10, 2)
            image[(yy - cy) ** 2 + (xx - cx) ** 2 < 20] += 80
        cv2.imwrite(str(root / "frames" / f"{i:03d}.png"), np.clip(image, 0, 255).astype(np.uint8))
        rows.append(
            {
                "frame": f"frames/{i:03d}.png",
                "label": int(present),
                "subject": f"s{subject:02d}",
                "split": splits[subject],
                "preset": preset,
            }
        )
    with (root / "labels.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root


@pytest.fixture(scope="session")
def multipreset_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_multipreset_dataset(tmp_path_factory.mktemp("heating") / "multi")


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny networks run faster on one thread, and the shared machine's other jobs keep the second core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
