"""Wall time of `usqa train` per budget preset and task: `python -m experiments.results.timing`.

debug on 96 simulated frames at 64 px, demo on 600 frames at 128 px, default on 5000 frames at 128 px (the
issue's budgets: seconds, <= 90 s and <= 20 min on 2 cores). Times include loading the data set and training
the non-selective baseline. Results go to runs/timing/timing.json and are printed as a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from usqa.contracts.training import PRESETS, TASKS
from usqa.service.simulator import write_dataset
from usqa.trainer.amenability.run import train
from usqa.trainer.recipe.presets import preset

DATA: dict[str, dict[str, int]] = {
    "debug": {"frames": 96, "subjects": 8, "size": 64},
    "demo": {"frames": 600, "subjects": 16, "size": 128},
    "default": {"frames": 5000, "subjects": 80, "size": 128},
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.results.timing", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("runs/timing"))
    parser.add_argument("--presets", nargs="+", choices=PRESETS, default=list(PRESETS))
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    parser.add_argument("--algo", default="reinforce", choices=("reinforce", "ddpg"))
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    results_file = args.out / "timing.json"
    results = json.loads(results_file.read_text()) if results_file.is_file() else {}
    for name in args.presets:
        data_dir = args.out / f"data-{name}"
        if not (data_dir / "labels.csv").is_file():
            d = DATA[name]
            write_dataset(
                data_dir,
                frames=d["frames"],
                subjects=d["subjects"],
                size=d["size"],
                seed=0,
                workers=2,
                force=True,
            )
        for task in args.tasks:
            config = preset(name, task, "weighted", args.algo)
            started = time.perf_counter()
            result = train(config, data_dir, args.out / f"{name}-{task}", progress=False)
            seconds = time.perf_counter() - started
            results[f"{name}/{task}"] = {
                "seconds": seconds,
                "stages": result.seconds,
                "frames": DATA[name]["frames"],
                "input_px": config.frame.size,
                "threads": torch.get_num_threads(),
                "load_average": list(os.getloadavg()),
            }
            args.out.mkdir(parents=True, exist_ok=True)
            results_file.write_text(json.dumps(results, indent=2) + "\n")
            print(f"{name:8s} {task:9s} {seconds:7.1f} s  {result.seconds}", flush=True)
    print("| preset | task | frames | input | wall time | load average (1 min) |\n|---|---|---|---|---|---|")
    for key, r in results.items():
        name, task = key.split("/")
        print(
            f"| {name} | {task} | {r['frames']} | {r['input_px']} px | {r['seconds']:.0f} s | {r['load_average'][0]:.1f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
