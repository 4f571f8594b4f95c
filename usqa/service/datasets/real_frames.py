"""A small labelled data set from real ultrasound frames that pydicom ships, with corrupted copies.

Sources are pydicom's bundled ultrasound examples, read from inside the installed package (nothing is
downloaded). The task, defined on 32 px patches of each scan region: does the patch show an anechoic
region (a heart chamber, a vessel, a node's dark cortex)? The label is computed from the clean patch.
Half the patches are corrupted with the standard ultrasound corruptions of MedMNIST-C and usaugment
(speckle, blur, motion blur, shadow, contrast loss, gain, receiver noise, haze), re-implemented here in
numpy and OpenCV: mildly (MedMNIST-C's severities, still amenable) or destructively (non-amenable).

    python -m usqa.service.datasets.real_frames --out runs/real --seed 0

Subjects are disjoint 64 px blocks of a scan region, so no pixel of a holdout patch is seen in training.
"""

from __future__ import annotations

import argparse
import csv
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pydicom

from usqa.service.datasets.splits import assign_splits
from usqa.service.frames.dicom import decode_dicom

PATCH = 32
BLOCK = 64
STRIDE = 16
# A patch is anechoic when half of it, smoothed over the speckle, is darker than DARK_LEVEL (of 255):
# a blood pool or fluid, not merely dark tissue (about half the cardiac patches, a fifth of the node's).
DARK_LEVEL = 10
ANECHOIC_SHARE = 0.5
CORRUPTED_SHARE = 0.5
DESTROYING_SHARE = 0.8
MID_GREY = 100.0
MAX_PIXELS, MAX_FRAMES = 4096 * 4096, 1000


@dataclass(frozen=True)
class Source:
    """One bundled file: its scan region (rows, cols, measured by eye, clear of text and bars)."""

    file: str
    what: str
    rows: tuple[int, int]
    cols: tuple[int, int]
    frame_step: int


# examples_jpeg2k.dcm is the lymph-node image again (JPEG 2000, twice the size) and would leak across
# splits; examples_palette.dcm is an obstetric frame with almost no tissue; ExplVR_BigEnd.dcm is 60x80.
SOURCES: tuple[Source, ...] = (
    Source("examples_ybr_color.dcm", "cardiac sector cine, 30 frames (SonoSite)", (15, 225), (35, 285), 2),
    Source("examples_rgb_color.dcm", "linear lymph-node frame, power Doppler (GE)", (28, 145), (22, 296), 1),
)


def pydicom_test_files() -> Path:
    """The folder of test files inside the installed pydicom package."""
    return Path(pydicom.__file__).resolve().parent / "data" / "test_files"


def source_path(source: Source) -> Path:
    """The file of a source, which must lie inside the installed pydicom package (never a download)."""
    path = (pydicom_test_files() / source.file).resolve()
    if not path.is_file() or pydicom_test_files() not in path.parents:
        raise FileNotFoundError(f"{source.file} is not bundled with the installed pydicom")
    return path


def _scan_region(frames: list[np.ndarray], source: Source) -> np.ndarray:
    """The scan region: convex hull of what ever shows tissue inside the source's box."""
    brightest = cv2.GaussianBlur(np.max(frames, axis=0), (0, 0), 3)
    region = np.zeros(brightest.shape, np.uint8)
    (r0, r1), (c0, c1) = source.rows, source.cols
    points = np.argwhere(brightest[r0:r1, c0:c1] > 12) + np.array([r0, c0])
    hull = cv2.convexHull(points[:, ::-1].astype(np.int32))
    cv2.fillConvexPoly(region, hull, 1)
    region[:r0], region[r1:], region[:, :c0], region[:, c1:] = 0, 0, 0, 0
    return region.astype(bool)


def anechoic_label(patch: np.ndarray) -> int:
    """1 when half of the clean patch, smoothed over the speckle, is darker than DARK_LEVEL."""
    smooth = cv2.GaussianBlur(patch, (0, 0), 2)
    return int((smooth < DARK_LEVEL).mean() >= ANECHOIC_SHARE)


def _speckle(img: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    return img + img * rng.normal(0, level, img.shape)


def _blur(img: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    return cv2.GaussianBlur(img, (0, 0), sigma)


def _motion(img: np.ndarray, length: float, rng: np.random.Generator) -> np.ndarray:
    angle = rng.uniform(0, np.pi)
    size = int(length) | 1
    kernel = np.zeros((size, size), np.float32)
    half = size // 2
    for t in np.linspace(-half, half, 4 * size):
        kernel[round(half + t * np.sin(angle)), round(half + t * np.cos(angle))] = 1
    return cv2.filter2D(img, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT)


def _shadow(img: np.ndarray, depth: float, rng: np.random.Generator) -> np.ndarray:
    # usaugment's Gaussian shadow, wide and deep enough to cover the patch when destroying.
    yy, xx = np.mgrid[: img.shape[0], : img.shape[1]] / img.shape[0]
    cx, cy = rng.uniform(0.3, 0.7, 2)
    sigma = 0.15 + 0.5 * depth
    return img * (1 - depth * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2)))


def _contrast(img: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    # Towards mid-grey, as a dynamic range turned far down would show it.
    return (img - MID_GREY) * factor + MID_GREY


def _gain(img: np.ndarray, offset: float, rng: np.random.Generator) -> np.ndarray:
    # Gain in dB adds to the log-compressed display: an offset in grey levels, up or down.
    return img + offset * (1 if rng.random() < 0.5 else -1)


def _noise(img: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    # Additive receiver noise, displayed after log compression: it fills the dark regions first.
    return img + np.abs(rng.normal(0, level, img.shape))


def _haze(img: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    # usaugment's haze artifact (clutter over the near field), here over the whole patch.
    return img * (1 - amount) + amount * MID_GREY * rng.uniform(0.8, 1.2)


Corruption = Callable[[np.ndarray, float, np.random.Generator], np.ndarray]
# kind: (function, mild range (MedMNIST-C's BreastMNIST levels: still readable), destroying range, or
# None where no severity takes the darkness evidence away: blur and speckle keep a dark region dark).
CORRUPTIONS: dict[str, tuple[Corruption, tuple[float, float], tuple[float, float] | None]] = {
    "speckle_noise": (_speckle, (0.10, 0.30), None),
    "gaussian_blur": (_blur, (0.5, 1.5), None),
    "motion_blur": (_motion, (3.0, 7.0), None),
    "shadow": (_shadow, (0.2, 0.4), (0.93, 0.99)),
    "contrast_down": (_contrast, (0.6, 0.9), (0.03, 0.08)),
    "gain": (_gain, (5.0, 15.0), (60.0, 90.0)),
    "electronic_noise": (_noise, (3.0, 8.0), (60.0, 90.0)),
    "haze": (_haze, (0.05, 0.2), (0.85, 0.95)),
}


@dataclass(frozen=True)
class Corrupted:
    image: np.ndarray
    kind: str
    severity: str
    amenable: int


def corrupt(patch: np.ndarray, rng: np.random.Generator) -> Corrupted:
    """Leave the patch clean, or corrupt it mildly (amenable) or destructively (not amenable)."""
    if rng.random() >= CORRUPTED_SHARE:
        return Corrupted(patch, "none", "none", 1)
    kind = str(rng.choice(sorted(CORRUPTIONS)))
    function, mild, destroying = CORRUPTIONS[kind]
    destroy = destroying is not None and bool(rng.random() < DESTROYING_SHARE)
    level = float(rng.uniform(*(destroying if destroying is not None and destroy else mild)))
    image = np.clip(function(patch.astype(np.float32), level, rng), 0, 255).astype(np.uint8)
    return Corrupted(image, kind, "destroying" if destroy else "mild", int(not destroy))


def _patches(source: Source) -> list[tuple[str, int, np.ndarray]]:
    """(subject, frame index, patch) for every patch inside the scan region of a source."""
    frames = decode_dicom(source_path(source), max_pixels=MAX_PIXELS, max_frames=MAX_FRAMES)
    region = _scan_region(frames, source)
    stem = source.file.removesuffix(".dcm").removeprefix("examples_")
    found = []
    for top in range(source.rows[0], source.rows[1] - PATCH + 1, STRIDE):
        for left in range(source.cols[0], source.cols[1] - PATCH + 1, STRIDE):
            # Disjoint blocks are the subjects; a patch straddling two blocks is dropped.
            block = ((top - source.rows[0]) // BLOCK, (left - source.cols[0]) // BLOCK)
            bottom_block = (
                (top + PATCH - 1 - source.rows[0]) // BLOCK,
                (left + PATCH - 1 - source.cols[0]) // BLOCK,
            )
            if block != bottom_block or not region[top : top + PATCH, left : left + PATCH].all():
                continue
            for index in range(0, len(frames), source.frame_step):
                patch = frames[index][top : top + PATCH, left : left + PATCH]
                found.append((f"{stem}-b{block[0]}{block[1]}", index, patch))
    return found


def build(out: Path, *, seed: int = 0, force: bool = False) -> dict[str, int]:
    """Write the data set to `out` (docs/data.md format); returns counts. Same seed, same bytes."""
    if out.exists() and any(out.iterdir()):
        if not force:
            raise FileExistsError(f"{out} is not empty; pass --force to replace it")
        shutil.rmtree(out)
    (out / "frames").mkdir(parents=True)
    rows: list[list[str | int]] = []
    for source in SOURCES:
        for subject, index, patch in _patches(source):
            # One generator per patch, keyed by its number: any patch can be rebuilt alone.
            rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(len(rows),)))
            corrupted = corrupt(patch, rng)
            name = f"frames/{len(rows):06d}.png"
            cv2.imwrite(str(out / name), corrupted.image)
            rows.append(
                [
                    name,
                    anechoic_label(patch),
                    subject,
                    corrupted.amenable,
                    source.file,
                    index,
                    corrupted.kind,
                    corrupted.severity,
                ]
            )
    splits = assign_splits(sorted({str(row[2]) for row in rows}), seed=seed)
    with (out / "labels.csv").open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(
            (
                "frame",
                "label",
                "subject",
                "split",
                "amenable",
                "source",
                "source_frame",
                "corruption",
                "severity",
            )
        )
        for row in rows:
            writer.writerow((*row[:3], splits[str(row[2])], *row[3:]))
    return {
        "frames": len(rows),
        "subjects": len(splits),
        "anechoic": sum(int(row[1]) for row in rows),
        "non_amenable": sum(1 - int(row[3]) for row in rows),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="data-set folder to create")
    parser.add_argument("--seed", type=int, default=0, help="corruption and split seed (default 0)")
    parser.add_argument("--force", action="store_true", help="replace a non-empty --out")
    args = parser.parse_args(argv)
    counts = build(args.out, seed=args.seed, force=args.force)
    print(" ".join(f"{k}={v}" for k, v in counts.items()), "->", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
