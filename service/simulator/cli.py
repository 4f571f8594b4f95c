"""`usqa simulate`: write a simulated, labelled ultrasound data set (frames, masks, amenability)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from contracts.cli import UsageError
from service.simulator.cine import DEFAULT_DEGRADED_FRACTION
from service.simulator.dataset import SimulationError, write_dataset
from service.simulator.presets import ALL_PRESETS, PRESET_NAMES


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="write a simulated B-mode data set with masks and amenability labels",
        description=(
            "Simulate ultrasound sweeps (speckle, attenuation, scan conversion) with degradations, and "
            "write them as a data-set folder (docs/data.md). Same arguments, same bytes."
        ),
    )
    parser.add_argument("--out", type=Path, required=True, help="data-set folder to create")
    parser.add_argument("--frames", type=int, default=1000, help="frames in total (default 1000)")
    parser.add_argument("--subjects", type=int, default=20, help="subjects, one sweep each (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--size", type=int, default=128, help="frame width and height in pixels (default 128)"
    )
    parser.add_argument(
        "--preset",
        choices=(*PRESET_NAMES, ALL_PRESETS),
        default=PRESET_NAMES[0],
        help=f"probe and organ; '{ALL_PRESETS}' gives each subject one preset, evenly (default %(default)s)",
    )
    parser.add_argument(
        "--degraded-fraction",
        type=float,
        default=DEFAULT_DEGRADED_FRACTION,
        help="expected share of degraded frames (default %(default)s)",
    )
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="worker processes (default: all cores)"
    )
    parser.add_argument("--force", action="store_true", help="replace a non-empty --out")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        summary = write_dataset(
            args.out,
            frames=args.frames,
            subjects=args.subjects,
            seed=args.seed,
            size=args.size,
            preset=args.preset,
            degraded_fraction=args.degraded_fraction,
            workers=args.workers,
            force=args.force,
        )
    except SimulationError as exc:
        raise UsageError(str(exc)) from exc
    print(summary.line())
    return 0
