"""`usqa demo`: the main job on one machine, with embedded defaults.

Today it simulates a labelled data set and writes its contact sheet; later stages (heat, train, export, serve,
stream, retrain) join here as they land, each printing where its outputs are.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from service.datasets import load_dataset
from service.datasets.cli import format_counts, render_sheet, sample_for_sheet
from service.datasets.contact_sheet import write_png
from service.simulator import write_dataset

DEMO_FRAMES = 600
DEMO_SUBJECTS = 12
DEMO_SEED = 0
DEMO_PRESET = "transrectal_prostate"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("demo", help="run the main job end to end on this machine")
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="where every output goes")
    parser.add_argument("--frames", type=int, default=DEMO_FRAMES)
    parser.add_argument("--seed", type=int, default=DEMO_SEED)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    out: Path = args.out
    data_dir = out / "data"
    started = time.perf_counter()
    if data_dir.exists():
        # The demo owns its output folder: a re-run starts from a clean data set.
        shutil.rmtree(data_dir)
    summary = write_dataset(
        data_dir,
        frames=args.frames,
        subjects=DEMO_SUBJECTS,
        seed=args.seed,
        size=128,
        preset=DEMO_PRESET,
    )
    print(f"[1/2] simulated {summary.frames} frames of {DEMO_PRESET} into {data_dir}")
    dataset = load_dataset(data_dir)
    sheet = out / "contact_sheet.png"
    write_png(sheet, render_sheet(dataset, sample_for_sheet(dataset, 48)))
    print(f"[2/2] validated the data set and wrote its contact sheet to {sheet}")
    print(format_counts(dataset))
    print(f"demo finished in {time.perf_counter() - started:.1f} s; outputs under {out.resolve()}")
    return 0
