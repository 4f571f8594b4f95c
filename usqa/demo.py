"""`usqa demo`: the main job on one machine, with embedded defaults.

Simulate a labelled data set, train the amenability pair (demo budget), evaluate it on the holdout split,
export and publish it into the demo's own registry, then score a simulated cine offline with the published
version. Each stage prints where its outputs are. (Serving, streaming and retraining through the API join here
with the retraining-jobs issue.)
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from service.datasets import load_dataset
from service.datasets.cli import format_counts, render_sheet, sample_for_sheet
from service.datasets.contact_sheet import write_png
from service.inference.offline import score_source
from service.settings import Settings
from service.simulator import simulate_cine, write_dataset

DEMO_FRAMES = 1200
DEMO_SUBJECTS = 24
DEMO_SEED = 0
DEMO_PRESET = "transrectal_prostate"
DEMO_MODEL = "usqa-demo"
STAGES = 5
CINE_FRAMES = 120


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("demo", help="run the main job end to end on this machine")
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="where every output goes")
    parser.add_argument("--frames", type=int, default=DEMO_FRAMES)
    parser.add_argument("--seed", type=int, default=DEMO_SEED)
    parser.add_argument("--config", default="demo", help="training budget preset (debug for a quick look)")
    parser.set_defaults(handler=run)


def _stage(n: int, text: str) -> None:
    print(f"[{n}/{STAGES}] {text}", flush=True)


def run(args: argparse.Namespace) -> int:
    # Torch is imported here, not at module import, so `usqa --help` and the runtime stay torch-free.
    from service.registry import CHAMPION, ModelRegistry
    from trainer.api import train
    from trainer.config import preset
    from trainer.evaluate import evaluate
    from trainer.export import ExportOptions, export_run

    out: Path = args.out
    started = time.perf_counter()
    if out.exists():
        # The demo owns its output folder: a re-run starts clean, so nothing mixes two runs.
        shutil.rmtree(out)
    data_dir, run_dir, registry_dir = out / "data", out / "run", out / "models"

    summary = write_dataset(
        data_dir, frames=args.frames, subjects=DEMO_SUBJECTS, seed=args.seed, size=128, preset=DEMO_PRESET
    )
    dataset = load_dataset(data_dir)
    sheet = out / "contact_sheet.png"
    write_png(sheet, render_sheet(dataset, sample_for_sheet(dataset, 48)))
    _stage(1, f"simulated {summary.frames} {DEMO_PRESET} frames into {data_dir}; contact sheet {sheet}")
    print(format_counts(dataset))

    config = preset(args.config, task="classify", reward="weighted", algo="reinforce")
    result = train(config, data_dir, run_dir, progress=True)
    _stage(
        2, f"trained the controller/predictor pair ({args.config} budget) into {run_dir}: {result.seconds}"
    )

    report = evaluate(run_dir, data_dir, run_dir / "eval")
    point = report.get("operating_point")
    _stage(3, f"evaluated on the holdout split (operating point {point}): {run_dir / 'eval' / 'report.json'}")
    for method, curve in report["curves"].items():
        values = curve["mean"] if isinstance(curve, dict) else curve
        print(f"    {method:22s} " + " ".join(f"{v:.3f}" for v in values))

    registry = ModelRegistry(registry_dir)
    version = export_run(
        run_dir,
        registry,
        ExportOptions(name=DEMO_MODEL, alias=CHAMPION, class_names=("no_gland", "gland")),
        data_dir=data_dir,
    )
    _stage(4, f"exported and published {version.name} v{version.version} at {version.path}")

    cine_dir = out / "cine"
    for i, frame in enumerate(simulate_cine(DEMO_PRESET, CINE_FRAMES, seed=args.seed + 1)):
        write_png(cine_dir / f"{i:04d}.png", frame.image)
    report_offline = score_source(
        cine_dir, out / "scores", Settings(registry=registry_dir), name=DEMO_MODEL, ref=CHAMPION
    )
    _stage(
        5,
        f"scored a {report_offline.frames}-frame simulated cine offline with v{report_offline.version}: "
        f"{report_offline.amenable_fraction:.0%} amenable; {report_offline.csv_path}, {report_offline.plot_path}",
    )
    print(f"demo finished in {time.perf_counter() - started:.0f} s; outputs under {out.resolve()}")
    print("next: `usqa serve` (shipped model) and open http://127.0.0.1:8000/ for the live page")
    return 0
