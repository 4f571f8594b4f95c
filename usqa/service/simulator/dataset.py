"""Write a simulated data set folder (docs/data.md format), atomically and in parallel.

The folder is built in a staging directory beside `out` and renamed into place at the end, so an
interrupted run never leaves half a data set. Frames are rendered in chunks by a worker pool; each frame's
randomness depends only on (seed, subject, frame), so the worker count never changes a byte.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from usqa.service.datasets.splits import assign_splits
from usqa.service.simulator.cine import DEFAULT_DEGRADED_FRACTION, render_frame, subject_name, subject_sweep
from usqa.service.simulator.degradations import NO_DEGRADATION
from usqa.service.simulator.mixes import MIXES, STANDARD
from usqa.service.simulator.presets import ALL_PRESETS, PRESETS

LABELS_FILE = "labels.csv"
SETTINGS_FILE = "simulation.json"
FRAMES_DIR = "frames"
MASKS_DIR = "masks"
COLUMNS: tuple[str, ...] = (
    "frame",
    "label",
    "mask",
    "subject",
    "split",
    "amenable",
    "amenable_seg",
    "degradation",
    "severity",
    "preset",
)
# Frames per task handed to a worker: large enough to amortise the hand-off, small enough to balance.
CHUNK_FRAMES = 48
# A worker process costs about a second to start (OpenCV and numpy imports): below this many frames
# per worker the pool would cost more than it saves, so fewer workers (or none) are used.
MIN_FRAMES_PER_WORKER = 150
MIN_SIZE, MAX_SIZE = 32, 1024

MSG_NOT_A_FOLDER = "{out} exists and is not a folder"
MSG_NOT_EMPTY = "{out} is not empty; pass --force to replace it"
MSG_FEWER_FRAMES = "need at least one frame per subject: {frames} frames for {subjects} subjects"
MSG_POSITIVE = "{name} must be at least 1, got {value}"
MSG_SIZE = f"size must be between {MIN_SIZE} and {MAX_SIZE} pixels, got {{value}}"
MSG_FRACTION = "degraded fraction must be between 0 and 1, got {value}"
MSG_PRESET = "unknown preset {value!r}; choose one of {choices}"
MSG_MIX = "unknown degradation mix {value!r}; choose one of {choices}"


class SimulationError(ValueError):
    """Arguments or an output folder that a simulation cannot use; the message says what to change."""


@dataclass(frozen=True)
class SimulationSummary:
    """What a simulation wrote, in numbers."""

    out: Path
    frames: int
    subjects: int
    with_organ: int
    degraded: int
    amenable: int
    amenable_seg: int
    splits: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    workers: int = 1

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("inf")

    def line(self) -> str:
        splits = " ".join(f"{name}={count}" for name, count in self.splits.items())
        return (
            f"simulated {self.frames} frames of {self.subjects} subjects ({self.with_organ} with the organ, "
            f"{self.degraded} degraded; amenable {self.amenable}, amenable_seg {self.amenable_seg}; "
            f"{splits}) -> {self.out} in {self.seconds:.1f} s, {self.frames_per_second:.0f} frames/s "
            f"with {self.workers} worker{'s' if self.workers != 1 else ''}"
        )


@dataclass(frozen=True)
class _Chunk:
    """A run of one subject's frames for one worker."""

    seed: int
    preset: str
    subject_index: int
    subject_frames: int
    size: int
    degraded_fraction: float
    mix: str
    start: int
    stop: int
    first_number: int
    staging: str


def frames_per_subject(frames: int, subjects: int) -> list[int]:
    """Split `frames` over `subjects` as evenly as possible (earlier subjects get the remainder)."""
    base, extra = divmod(frames, subjects)
    return [base + (1 if i < extra else 0) for i in range(subjects)]


def _png(image: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return encoded.tobytes()


def _render_chunk(chunk: _Chunk) -> list[tuple[str, ...]]:
    """Render and write one chunk; return its labels.csv rows (split filled in later)."""
    sweep = subject_sweep(
        chunk.seed,
        chunk.preset,
        chunk.subject_index,
        chunk.subject_frames,
        chunk.size,
        chunk.degraded_fraction,
        chunk.mix,
    )
    staging = Path(chunk.staging)
    rows: list[tuple[str, ...]] = []
    for offset, frame_index in enumerate(range(chunk.start, chunk.stop)):
        frame = render_frame(sweep, frame_index)
        name = f"{chunk.first_number + offset:06d}.png"
        frame_ref, mask_ref = f"{FRAMES_DIR}/{name}", f"{MASKS_DIR}/{name}"
        (staging / frame_ref).write_bytes(_png(frame.image))
        (staging / mask_ref).write_bytes(_png(frame.mask.astype(np.uint8) * 255))
        rows.append(
            (
                frame_ref,
                str(frame.label),
                mask_ref,
                frame.subject,
                "",
                str(frame.amenable),
                str(frame.amenable_seg),
                frame.degradation,
                f"{frame.severity:.3f}",
                frame.preset,
            )
        )
    return rows


def _worker_init() -> None:
    # One OpenCV thread per worker process: the pool already uses every core.
    cv2.setNumThreads(1)


def _check_arguments(
    frames: int, subjects: int, size: int, preset: str, degraded_fraction: float, workers: int, mix: str
) -> None:
    for name, value in (("frames", frames), ("subjects", subjects), ("workers", workers)):
        if value < 1:
            raise SimulationError(MSG_POSITIVE.format(name=name, value=value))
    if subjects > frames:
        raise SimulationError(MSG_FEWER_FRAMES.format(frames=frames, subjects=subjects))
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise SimulationError(MSG_SIZE.format(value=size))
    if preset != ALL_PRESETS and preset not in PRESETS:
        raise SimulationError(MSG_PRESET.format(value=preset, choices=", ".join((*PRESETS, ALL_PRESETS))))
    if mix not in MIXES:
        raise SimulationError(MSG_MIX.format(value=mix, choices=", ".join(MIXES)))
    if not 0.0 <= degraded_fraction <= 1.0:
        raise SimulationError(MSG_FRACTION.format(value=degraded_fraction))


def _check_output(out: Path, force: bool) -> None:
    if out.exists() or out.is_symlink():
        if not out.is_dir():
            raise SimulationError(MSG_NOT_A_FOLDER.format(out=out))
        if any(out.iterdir()) and not force:
            raise SimulationError(MSG_NOT_EMPTY.format(out=out))


def _publish(staging: Path, out: Path) -> None:
    """Move the finished staging folder to `out`, replacing what was there."""
    if out.exists():
        retired = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        retired.rmdir()
        out.rename(retired)
        staging.rename(out)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        staging.rename(out)


def _worker_count(requested: int, frames: int, chunks: int) -> int:
    return max(1, min(requested, chunks, frames // MIN_FRAMES_PER_WORKER))


def _run_chunks(chunks: Sequence[_Chunk], workers: int) -> list[tuple[str, ...]]:
    if workers == 1:
        return [row for chunk in chunks for row in _render_chunk(chunk)]
    # forkserver: workers start from a clean process (no inherited OpenCV thread pool), with the
    # simulator imported once in the server rather than in every worker.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_init) as pool:
        return [row for rows in pool.map(_render_chunk, chunks) for row in rows]


def write_dataset(
    out: Path,
    *,
    frames: int,
    subjects: int,
    seed: int = 0,
    size: int = 128,
    preset: str = "transrectal_prostate",
    degraded_fraction: float = DEFAULT_DEGRADED_FRACTION,
    workers: int | None = None,
    force: bool = False,
    mix: str = STANDARD.name,
) -> SimulationSummary:
    """Simulate `frames` frames of `subjects` subjects into the data-set folder `out`.

    Each subject is one sweep (a cine) with one preset (`all` cycles presets over subjects). The same
    arguments give a byte-identical folder whatever `workers` is (`workers` is an upper bound: small jobs
    run in fewer processes). Degraded episodes draw their kind and severity from the named `mix`
    (usqa/service/simulator/mixes.py). Refuses a non-empty `out` unless `force`.
    """
    workers = workers if workers is not None else os.cpu_count() or 1
    _check_arguments(frames, subjects, size, preset, degraded_fraction, workers, mix)
    out = Path(out)
    _check_output(out, force)
    started = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        (staging / FRAMES_DIR).mkdir()
        (staging / MASKS_DIR).mkdir()
        chunks, number = [], 0
        for subject_index, count in enumerate(frames_per_subject(frames, subjects)):
            for start in range(0, count, CHUNK_FRAMES):
                stop = min(count, start + CHUNK_FRAMES)
                chunks.append(
                    _Chunk(
                        seed,
                        preset,
                        subject_index,
                        count,
                        size,
                        degraded_fraction,
                        mix,
                        start,
                        stop,
                        number,
                        str(staging),
                    )
                )
                number += stop - start
        used_workers = _worker_count(workers, frames, len(chunks))
        rows = _run_chunks(chunks, used_workers)

        names = [subject_name(i) for i in range(subjects)]
        splits = assign_splits(names, seed=seed)
        with (staging / LABELS_FILE).open("w", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(COLUMNS)
            for row in rows:
                writer.writerow((*row[:4], splits[row[3]], *row[5:]))
        settings = {
            "generator": "usqa simulate",
            "frames": frames,
            "subjects": subjects,
            "seed": seed,
            "size": size,
            "preset": preset,
            "degraded_fraction": degraded_fraction,
            "mix": mix,
        }
        (staging / SETTINGS_FILE).write_text(json.dumps(settings, indent=2) + "\n")
        _publish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise

    split_counts = Counter(splits[row[3]] for row in rows)
    return SimulationSummary(
        out=out,
        frames=frames,
        subjects=subjects,
        with_organ=sum(row[1] == "1" for row in rows),
        degraded=sum(row[7] != NO_DEGRADATION for row in rows),
        amenable=sum(row[5] == "1" for row in rows),
        amenable_seg=sum(row[6] == "1" for row in rows),
        splits={name: split_counts[name] for name in ("train", "val", "holdout") if split_counts[name]},
        seconds=time.perf_counter() - started,
        workers=used_workers,
    )
