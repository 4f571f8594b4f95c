"""Simulator speed: `python -m bench.simulator_speed` prints frames/s and records them in docs/performance.md.

Three rates at 128 px, all writing PNG frames and masks to a temporary folder:
- `usqa simulate` itself (`write_dataset`, preset `all`) with one worker and with every core;
- the limit: only what no simulator can skip, drawing the same random numbers per frame and writing the
  same two PNGs, without any physics;
- a naive peer: the same physics written the straightforward way (a Python loop per scan line with
  `np.convolve`, a Python loop per pixel for scan conversion), on a few frames only.
The generated block `simulator` of the performance page is rewritten (`docs_gen.blocks`); the rest is kept.
"""

from __future__ import annotations

import argparse
import datetime
import math
import multiprocessing
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path

import cv2
import numpy as np

from bench.machine import cpu_model
from docs_gen.blocks import check_block, invocation, replace_block
from usqa.service.simulator.acoustics import build_echogenicity
from usqa.service.simulator.cine import Stream, generator, render_frame, subject_sweep
from usqa.service.simulator.dataset import frames_per_subject, write_dataset
from usqa.service.simulator.presets import PRESET_NAMES, preset_for_subject

SIZE = 128
SEED = 0
FRAMES_PER_SUBJECT = 50
BLOCK = "simulator"
DOC = Path("docs/performance.md")
# Uniform random numbers the simulator draws per beam sample: scatterer occupancy, the scatterers'
# Box-Muller pair and the noise's Box-Muller pair.
UNIFORMS_PER_SAMPLE = 5


@dataclass(frozen=True)
class Rate:
    what: str
    workers: int
    frames: int
    seconds: float
    cpu_seconds: float

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (worker pools included)."""
    own, children = os.times(), os.times()
    return own.user + own.system + children.children_user + children.children_system


def _timed(what: str, workers: int, frames: int, run: Callable[[], None]) -> Rate:
    cpu, start = _cpu_seconds(), time.perf_counter()
    run()
    return Rate(what, workers, frames, time.perf_counter() - start, _cpu_seconds() - cpu)


# --- the limit: random numbers and PNG writes, no physics -------------------------------------------


@lru_cache(maxsize=8)
def _sample_frame(preset: str) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """A real frame and mask of `preset` to write over and over, and the preset's beam grid shape."""
    sweep = subject_sweep(SEED, preset, 0, 10, SIZE, 0.0)
    frame = render_frame(sweep, sweep.widest_frame())
    return frame.image, frame.mask.astype(np.uint8) * 255, (sweep.scan.n_depth, sweep.scan.n_lines)


def _limit_chunk(task: tuple[int, int, int, str]) -> int:
    subject_index, count, first, folder = task
    image, mask, beam_shape = _sample_frame(preset_for_subject("all", subject_index).name)
    for k in range(count):
        rng = generator(SEED, subject_index, Stream.SPECKLE, k)
        rng.random((UNIFORMS_PER_SAMPLE, *beam_shape), dtype=np.float32)
        name = f"{first + k:06d}.png"
        (Path(folder) / f"f{name}").write_bytes(cv2.imencode(".png", image)[1].tobytes())
        (Path(folder) / f"m{name}").write_bytes(cv2.imencode(".png", mask)[1].tobytes())
    return count


def _limit(frames: int, workers: int, folder: Path) -> None:
    counts = frames_per_subject(frames, max(1, frames // FRAMES_PER_SUBJECT))
    starts = np.cumsum([0, *counts[:-1]])
    tasks = [(i, c, int(s), str(folder)) for i, (c, s) in enumerate(zip(counts, starts, strict=True))]
    if workers == 1:
        for task in tasks:
            _limit_chunk(task)
        return
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        list(pool.map(_limit_chunk, tasks))


# --- the naive peer: the same physics, loop by loop ---------------------------------------------------


def _gaussian(sigma: float) -> np.ndarray:
    half = max(1, math.ceil(3 * sigma))
    x = np.arange(-half, half + 1)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def naive_frame(subject_index: int, frame: int) -> np.ndarray:
    """One frame the straightforward way: per-line speckle and PSF, per-pixel scan conversion."""
    sweep = subject_sweep(SEED, "all", subject_index, FRAMES_PER_SUBJECT, SIZE, 0.0)
    state = sweep.state_at(frame)
    echo = build_echogenicity(state)  # anatomy as in the simulator; the loops below are the physics
    preset, scan, subject = sweep.profile.preset, sweep.scan, sweep.profile
    rng = np.random.default_rng([SEED, subject_index, frame])
    n_depth, n_lines = echo.shape
    axial = _gaussian(preset.speckle_axial_px * scan.samples_per_px)
    lateral = _gaussian(preset.speckle_lateral_px * scan.samples_per_px)
    field = np.zeros((n_depth, n_lines), complex)
    for line in range(n_lines):
        scatterers = (rng.standard_normal(n_depth) + 1j * rng.standard_normal(n_depth)) / math.sqrt(2)
        field[:, line] = np.convolve(scatterers * np.sqrt(echo[:, line]), axial, mode="same")
    for row in range(n_depth):
        field[row, :] = np.convolve(field[row, :], lateral, mode="same")
    beam = np.zeros((n_depth, n_lines))
    for line in range(n_lines):
        for row in range(n_depth):
            depth = float(scan.depth_cm[row, 0])
            attenuation = -preset.attenuation_db_per_cm * depth
            gain = 10 ** ((attenuation * (1 - subject.tgc_compensation) + subject.gain_db) / 20)
            noise = 10 ** ((preset.noise_floor_db - subject.tgc_compensation * attenuation) / 20)
            echo_value = field[row, line] * gain + noise * complex(
                rng.standard_normal(), rng.standard_normal()
            )
            db = 20 * math.log10(max(abs(echo_value), 1e-6))
            beam[row, line] = min(
                255.0, max(0.0, 255 * (db / preset.dynamic_range_db + preset.tissue_display_level))
            )
    image = np.zeros((SIZE, SIZE), np.uint8)
    half_angle = math.radians(preset.probe.half_angle_deg)
    for row in range(SIZE):
        for col in range(SIZE):
            x, y = float(scan.pixel_x[row, col]), float(scan.pixel_y[row, col])
            if scan.is_sector:
                r, angle = math.hypot(x, y), math.atan2(x, y)
                i = (r - preset.probe.radius_cm) / preset.probe.depth_cm * n_depth - 0.5
                j = (angle + half_angle) / (2 * half_angle) * n_lines - 0.5
            else:
                i = y / preset.probe.depth_cm * n_depth - 0.5
                j = (x + preset.probe.width_cm / 2) / preset.probe.width_cm * n_lines - 0.5
            if 0 <= i < n_depth - 1 and 0 <= j < n_lines - 1:
                i0, j0 = int(i), int(j)
                di, dj = i - i0, j - j0
                value = (
                    beam[i0, j0] * (1 - di) * (1 - dj)
                    + beam[i0 + 1, j0] * di * (1 - dj)
                    + beam[i0, j0 + 1] * (1 - di) * dj
                    + beam[i0 + 1, j0 + 1] * di * dj
                )
                image[row, col] = round(value)
    return image


def _naive(frames: int, folder: Path) -> None:
    for k in range(frames):
        image = naive_frame(k % len(PRESET_NAMES), k)
        (folder / f"naive{k:04d}.png").write_bytes(cv2.imencode(".png", image)[1].tobytes())


# --- the report -----------------------------------------------------------------------------------


def _simulate(out: Path, frames: int, workers: int) -> None:
    subjects = max(1, frames // FRAMES_PER_SUBJECT)
    write_dataset(out, frames=frames, subjects=subjects, seed=SEED, size=SIZE, preset="all", workers=workers)


def measure(frames: int, naive_frames: int) -> list[Rate]:
    cores = os.cpu_count() or 1
    rates = []
    with tempfile.TemporaryDirectory(prefix="usqa-bench-") as tmp:
        root = Path(tmp)
        for workers in sorted({1, cores}):
            out = root / f"simulate-{workers}"
            what = "`usqa simulate` (write_dataset, preset all)"
            rates.append(_timed(what, workers, frames, partial(_simulate, out, frames, workers)))
            shutil.rmtree(out)
        for workers in sorted({1, cores}):
            folder = root / f"limit-{workers}"
            folder.mkdir()
            what = "limit: same random draws + same PNG writes, no physics"
            rates.append(_timed(what, workers, frames, partial(_limit, frames, workers, folder)))
            shutil.rmtree(folder)
        what = "naive peer: per-line `np.convolve`, per-pixel scan conversion"
        rates.append(_timed(what, 1, naive_frames, partial(_naive, naive_frames, root)))
    return rates


def report(rates: Sequence[Rate], command: str) -> str:
    cores = os.cpu_count() or 1
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    machine = cpu_model(platform.processor() or "unknown CPU")
    lines = [
        f"Measured {datetime.date.today().isoformat()} on {cores} cores ({machine}), Python "
        f"{platform.python_version()}, load average at the end {load}; frames of {SIZE} x {SIZE} px, "
        "PNG frame and mask written for each.",
        f"Command: `{command}`.",
        "",
        "| what | workers | frames | seconds | frames/s | frames per CPU-second |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rates:
        # Pool workers are children of the fork server, not of this process: their CPU time is not ours to see.
        per_cpu = f"{r.frames / r.cpu_seconds:.1f}" if r.workers == 1 and r.cpu_seconds > 0 else "-"
        lines.append(
            f"| {r.what} | {r.workers} | {r.frames} | {r.seconds:.2f} | {r.frames_per_second:.1f} | {per_cpu} |"
        )
    lines += [
        "",
        "Frames/s is wall-clock and includes starting the worker pool (about a second). Frames per "
        "CPU-second (one worker only: pool workers are not this process's children) is the cost per "
        "frame whatever else runs: on a shared machine Linux's autogroup scheduling gives this session "
        "only its share of the cores, whatever the worker count, so compare the load average.",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=2000, help="frames per simulator and limit run")
    parser.add_argument("--naive-frames", type=int, default=6, help="frames for the naive peer")
    parser.add_argument("--doc", type=Path, default=DOC, help="performance page to update")
    parser.add_argument("--no-doc", action="store_true", help="print only")
    args = parser.parse_args(argv)
    command = invocation("bench.simulator_speed", argv)
    if not args.no_doc:
        check_block(args.doc, BLOCK)
    section = report(measure(args.frames, args.naive_frames), command)
    print(section)
    if not args.no_doc:
        replace_block(args.doc, BLOCK, section, module="bench.simulator_speed")
        print(f"updated {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
