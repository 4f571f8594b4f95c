"""The analogue of the paper's Table 1 on a fixed-seed simulator benchmark: `python -m experiments.results`.

Simulates one data set (transrectal_prostate, fixed seed), trains for each task the non-selective baseline
and the controller/predictor pair for every reward (R_avg, R_w, R_sel) and algorithm (REINFORCE, DDPG),
evaluates each on the holdout split, and writes the tables into docs/results.md (between the generated-block
markers; the prose around them is kept) and the figures into docs/img/results_*.png. Runs go to runs/results.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from experiments.results.tables import check_docs, write_docs
from usqa.contracts.training import ALGOS, REWARDS, TASKS, TrainConfig, apply_overrides
from usqa.service.simulator import write_dataset
from usqa.trainer.amenability.evaluate import evaluate
from usqa.trainer.amenability.run import train
from usqa.trainer.amenability.run_folder import EVAL_DIR
from usqa.trainer.recipe.presets import preset

log = logging.getLogger("experiments.results")

DATA_SETTINGS: dict[str, Any] = {
    "frames": 3000,
    "subjects": 60,
    "seed": 0,
    "size": 128,
    "preset": "transrectal_prostate",
}
# The budget of every cell, the same for the baseline and each controller/predictor pair of a task: the
# `default` networks on 64 px inputs, 600 classifier steps (60 episodes x 10 mini-batches of 32) and 400
# segmenter steps (40 x 10 x 16, a U-Net of half the default widths), so that the 14 trainings fit in about
# an hour on 2 shared cores. The `default` preset itself (128 px) is timed by experiments.results.timing.
BENCH_OVERRIDES: dict[str, dict[str, Any]] = {
    "classify": {
        "frame": {"size": 64},
        "episodes": 60,
        "steps_per_episode": 10,
        "batch_size": 32,
        "reward_frames": 128,
    },
    "segment": {
        "frame": {"size": 64},
        "episodes": 40,
        "steps_per_episode": 10,
        "batch_size": 16,
        "reward_frames": 64,
        "unet": {"widths": [4, 8, 16, 32]},
    },
}


def bench_config(task: str, reward: str, algo: str, budget: str) -> TrainConfig:
    if budget == "bench":
        config = preset("default", task, reward, algo)  # type: ignore[arg-type]
        return replace(apply_overrides(config, BENCH_OVERRIDES[task]), name="bench")
    return preset(budget, task, reward, algo)  # type: ignore[arg-type]


def simulate(out: Path, settings: dict[str, Any]) -> Path:
    """The benchmark data set, simulated once; reused when its settings file matches."""
    settings_file = out / "simulation.json"
    if settings_file.is_file() and json.loads(settings_file.read_text()) == settings:
        return out
    started = time.perf_counter()
    write_dataset(out, workers=2, force=True, **settings)
    settings_file.write_text(json.dumps(settings, indent=2) + "\n")
    log.info("simulated %s in %.0f s", out, time.perf_counter() - started)
    return out


def train_cell(job: dict[str, Any]) -> dict[str, Any]:
    """Train one cell in a worker process (one torch thread: two workers share the two cores)."""
    torch.set_num_threads(job["threads"])
    config = TrainConfig.from_dict(job["config"])
    run_dir = Path(job["run_dir"])
    result = train(config, job["data_dir"], run_dir, progress=False)
    cell = {k: job[k] for k in ("task", "reward", "algo", "budget")}
    cell |= {"seconds": result.seconds, "config": config.to_dict()}
    (run_dir / "cell.json").write_text(json.dumps(cell, indent=2) + "\n")
    log.info("trained %s %s %s in %s", cell["task"], cell["reward"], cell["algo"], result.seconds)
    return cell


def run_cells(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Train every cell (two at a time), then evaluate each against its task's baseline."""
    data_dir = simulate(
        args.out / "data", {**DATA_SETTINGS, "frames": args.frames, "subjects": args.subjects}
    )
    jobs: list[dict[str, Any]] = []
    for task in args.tasks:
        for reward in args.rewards:
            for algo in args.algos:
                first = not any(j["task"] == task for j in jobs)
                config = replace(
                    bench_config(task, reward, algo, args.budget), seed=args.seed, train_baseline=first
                )
                run_dir = args.out / task / f"{reward}-{algo}"
                jobs.append(
                    {
                        "task": task,
                        "reward": reward,
                        "algo": algo,
                        "budget": config.name,
                        "config": config.to_dict(),
                        "run_dir": str(run_dir),
                        "data_dir": str(data_dir),
                        "threads": args.threads,
                        "baseline_run": str(args.out / task / f"{args.rewards[0]}-{args.algos[0]}"),
                    }
                )
    todo = [j for j in jobs if not (args.reuse and (Path(j["run_dir"]) / "cell.json").is_file())]
    # Baselines first (they are trained by each task's first cell), then the slowest (segmentation) cells.
    todo.sort(key=lambda j: (not j["config"]["train_baseline"], j["task"] != "segment"))
    if args.workers > 1 and len(todo) > 1:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=args.workers, mp_context=context) as pool:
            list(pool.map(train_cell, todo))
    else:
        for job in todo:
            train_cell(job)
    rows: list[dict[str, Any]] = []
    for job in jobs:
        cell = json.loads((Path(job["run_dir"]) / "cell.json").read_text())
        report = evaluate(
            job["run_dir"],
            data_dir,
            Path(job["run_dir"]) / EVAL_DIR,
            baseline_run=job["baseline_run"],
            resamples=args.resamples,
            seed=args.seed,
        )
        rows.append({**cell, "report": report})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.results", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("runs/results"))
    parser.add_argument("--docs", type=Path, default=Path("docs"))
    parser.add_argument("--budget", choices=("bench", "debug", "demo", "default"), default="bench")
    parser.add_argument("--frames", type=int, default=DATA_SETTINGS["frames"])
    parser.add_argument("--subjects", type=int, default=DATA_SETTINGS["subjects"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resamples", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    parser.add_argument("--workers", type=int, default=2, help="cells trained at the same time")
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    parser.add_argument("--rewards", nargs="+", choices=REWARDS, default=list(REWARDS))
    parser.add_argument("--algos", nargs="+", choices=ALGOS, default=list(ALGOS))
    parser.add_argument(
        "--reuse", action="store_true", help="evaluate finished cells again instead of retraining"
    )
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    check_docs(args.docs)
    started = time.perf_counter()
    rows = run_cells(args)
    settings = {**DATA_SETTINGS, "frames": args.frames, "subjects": args.subjects, "budget": args.budget}
    (args.out / "summary.json").write_text(
        json.dumps(
            [{k: v for k, v in r.items() if k != "report"} | {"report": r["report"]} for r in rows], indent=1
        )
    )
    write_docs(rows, settings, args.docs, total_seconds=time.perf_counter() - started)
    log.info("done in %.0f s: %s", time.perf_counter() - started, args.docs / "results.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
