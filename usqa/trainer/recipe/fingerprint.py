"""The data set's fingerprint: what the plan's rules read (nnU-Net's "dataset fingerprint", for 2-D ultrasound).

Measured on the training split only (the validation split is the size trial's, the holdout nobody's): frames and
subjects, the native frame size and aspect, intensity statistics, the class balance, and for segmentation the
target's size in pixels and its share of the frame. Pixel statistics come from a seeded sample of at most
`SAMPLE_FRAMES` frames read as stored, so a fingerprint takes seconds on any data set.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from usqa.contracts.training import Task
from usqa.service.datasets import LabelledDataset

SAMPLE_FRAMES = 200


@dataclass(frozen=True)
class Fingerprint:
    task: Task
    frames: int  # training frames (for segmentation: those with a target, as the trainer keeps them)
    subjects: int
    val_frames: int
    height: int  # median native frame height and width, pixels
    width: int
    aspect: float  # width / height
    intensity_mean: float  # grey levels 0-255 of the native frames
    intensity_std: float
    intensity_p01: float  # 0.5th and 99.5th percentiles (nnU-Net's clipping range)
    intensity_p99: float
    class_counts: dict[str, int]  # classification labels of the training split (as strings, JSON keys)
    majority_fraction: float
    target_fraction: float | None = None  # segmentation: mean share of the frame the target covers
    target_pixels: float | None = None  # median target area in native pixels
    target_diameter_fraction: float | None = None  # median sqrt(target area / frame area)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fingerprint:
        return cls(**data)

    def summary(self) -> str:
        """One line for the plan's printout."""
        line = (
            f"{self.frames} training frames of {self.subjects} subjects ({self.val_frames} validation), "
            f"{self.width}x{self.height} px, grey {self.intensity_mean:.0f} +- {self.intensity_std:.0f}"
        )
        if self.task == "classify":
            return line + f", majority class {self.majority_fraction:.1%}"
        return (
            line + f", target {self.target_fraction or 0:.1%} of the frame"
            f" (diameter {self.target_diameter_fraction or 0:.1%} of the side)"
        )


def measure_fingerprint(dataset: LabelledDataset, task: Task, seed: int = 0) -> Fingerprint:
    """The fingerprint of `dataset`'s training split for `task` (reads at most SAMPLE_FRAMES frames)."""
    train = dataset.split("train")
    val = dataset.split("val")
    sample_index = np.random.default_rng(seed).permutation(len(train))[:SAMPLE_FRAMES]
    sample = [train[int(i)] for i in sorted(sample_index)]
    frames = [dataset.read_frame(r) for r in sample]
    heights = np.array([f.shape[0] for f in frames])
    widths = np.array([f.shape[1] for f in frames])
    pixels = np.concatenate([f.ravel()[::7] for f in frames]).astype(np.float64) if frames else np.zeros(1)
    counts = Counter(str(r.label) for r in train)
    fractions: list[float] = []
    areas: list[float] = []
    kept = len(train)
    if task == "segment":
        kept = 0
        for record, frame in zip(sample, frames, strict=True):
            mask = dataset.read_mask(record)
            if mask is None or not mask.any():
                continue
            fractions.append(float(mask.mean()))
            areas.append(float(mask.sum()) * frame.size / mask.size)
        share = len(fractions) / max(1, len(sample))
        kept = round(len(train) * share)
    height, width = (
        int(np.median(heights)) if len(frames) else 0,
        int(np.median(widths)) if len(frames) else 0,
    )
    return Fingerprint(
        task=task,
        frames=kept,
        subjects=len({r.subject for r in train}),
        val_frames=len(val),
        height=height,
        width=width,
        aspect=round(width / height, 3) if height else 1.0,
        intensity_mean=round(float(pixels.mean()), 2),
        intensity_std=round(float(pixels.std()), 2),
        intensity_p01=float(np.percentile(pixels, 0.5)),
        intensity_p99=float(np.percentile(pixels, 99.5)),
        class_counts=dict(sorted(counts.items())),
        majority_fraction=round(max(counts.values()) / len(train), 4) if train else 0.0,
        target_fraction=round(float(np.mean(fractions)), 4) if fractions else None,
        target_pixels=round(float(np.median(areas)), 1) if areas else None,
        target_diameter_fraction=round(float(np.median(np.sqrt(fractions))), 4) if fractions else None,
    )
