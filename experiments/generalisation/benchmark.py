"""The generalisation benchmark (issue #13 item 4): `python -m experiments.generalisation` (`make results`).

Every method of `experiments.generalisation.methods.METHODS` on five data sets (two development simulator
settings, two fresh held-out simulator settings, real ultrasound frames; `experiments.generalisation.data`),
for classification on all and segmentation where masks exist, with several training seeds each; every run
is evaluated on its data set's holdout split by `usqa.trainer.amenability.evaluate` (controller, random, confidence and
ground-truth rejection; the non-selective predictor) and compared with the trivial baseline (majority class,
empty mask). The generated block `generalisation` of docs/results.md is rendered from the JSON files only.

    python -m experiments.generalisation [--jobs 2] [--seeds 0 1 2] [--budget benchmark]
    python -m experiments.generalisation --quick --out /tmp/gb      # debug budget, small sets (none held out), 2 seeds
    python -m experiments.generalisation --render-only              # the page again from runs/generalisation

Layout: runs/generalisation/data/NAME-KEY/ (data sets, KEY a content hash of their settings),
runs/generalisation/runs/DATA/TASK/METHOD/seedN/ (run folder, `train.json`, `eval/report.json`,
`result.json`), runs/generalisation/meta.json (data sets, methods, machine) and results.json (everything
the page shows). A run whose `result.json` holds the same config is not trained again (`--force` retrains).

Time: docs/results.md gives each run's wall time. The supervised reference (`reference.py`) runs on every
(data set, task, seed) whatever `--methods` says, before the methods: it is also the supervised stage every
method's run of that (data set, task, seed) continues from, and the slowest part (on `prostate_evidence_loss`,
one thread, load ~5 on 2 cores: 234 s classify, stopped at 1,300 steps; 396 s segment, all 2,000). Pass
`--methods` / `--seeds` / `--tasks` / `--datasets` to trim."""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import platform
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
import torch

from experiments.generalisation.data import benchmark_data, build, dataset_names, describe
from experiments.generalisation.methods import (
    BUDGETS,
    METHODS,
    REFERENCE,
    SUPERVISED_REFERENCE,
    SUPERVISED_REFERENCE_LABEL,
    available_methods,
    get_method,
    method_config,
    method_names,
)
from experiments.generalisation.page import check_docs, collect, write_docs
from experiments.generalisation.reference import reference_config, train_reference
from usqa.contracts.training import TASKS, TrainConfig
from usqa.trainer.amenability.engine import infer
from usqa.trainer.amenability.evaluate import evaluate
from usqa.trainer.amenability.run import load_run, train
from usqa.trainer.amenability.run_folder import EVAL_DIR, SUPERVISED_FILE
from usqa.trainer.amenability.supervised_stage import stage_identity
from usqa.trainer.data import load_task_data

log = logging.getLogger("experiments.generalisation")

TRAIN_FILE = "train.json"
RESULT_FILE = "result.json"
ERROR_FILE = "error.txt"
META_FILE = "meta.json"
CPU = torch.device("cpu")


def probe(run_dir: Path, data_dir: Path) -> dict[str, Any]:
    """What the report lacks: the spread of the controller's holdout scores and what the predictors output."""
    config, controller, predictor, baseline = load_run(run_dir)
    holdout = load_task_data(data_dir, config).holdout
    scores = infer(controller, holdout.frames, CPU).flatten().numpy()
    p5, p50, p95 = (float(v) for v in np.percentile(scores, [5, 50, 95]))
    out: dict[str, Any] = {"controller_scores": {"p5": p5, "p50": p50, "p95": p95}}
    for name, network in (("predictor", predictor), ("baseline", baseline)):
        if network is None:
            continue
        predicted = infer(network, holdout.frames, CPU).argmax(dim=1)
        if config.task == "classify":
            counts = torch.bincount(predicted.flatten(), minlength=config.num_classes)
            out[name] = {
                "top_class": int(counts.argmax()),
                "top_class_share": float(counts.max() / len(predicted)),
            }
        else:
            empty = (predicted.flatten(1) == 0).all(dim=1)
            out[name] = {"empty_mask_share": float(empty.float().mean())}
    return out


def train_job(job: dict[str, Any]) -> dict[str, Any]:
    """Train one run in a worker process with one torch thread (`--jobs` workers share the cores)."""
    if job["method"] == SUPERVISED_REFERENCE:  # trained and scored at once (reference.py)
        return train_reference(job, TRAIN_FILE, RESULT_FILE)
    torch.set_num_threads(1)
    config = TrainConfig.from_dict(job["config"])
    run_dir = Path(job["run_dir"])
    # A retrained run's old result must not outlive it if this training or its evaluation fails.
    (run_dir / RESULT_FILE).unlink(missing_ok=True)
    started = time.perf_counter()
    # Every method continues from the supervised reference's stage of the same (data set, task, seed).
    shared = job.get("shared_stage")
    result = train(
        config, job["data_dir"], run_dir, progress=False, shared_stage=Path(shared) if shared else None
    )
    record = {"config": job["config"], "seconds": result.seconds, "wall": time.perf_counter() - started}
    (run_dir / TRAIN_FILE).write_text(json.dumps(record, indent=1) + "\n")
    return record


def evaluate_job(job: dict[str, Any]) -> dict[str, Any]:
    """Evaluate one trained run (report + probe) and write its `result.json`."""
    torch.set_num_threads(1)
    run_dir = Path(job["run_dir"])
    started = time.perf_counter()
    report = evaluate(
        run_dir,
        job["data_dir"],
        run_dir / EVAL_DIR,
        baseline_run=job["baseline_run"],
        resamples=job["resamples"],
        seed=job["seed"],
        plots=False,
    )
    trained = json.loads((run_dir / TRAIN_FILE).read_text())
    result = {
        **{k: job[k] for k in ("dataset", "task", "method", "seed")},
        "config": job["config"],
        "seconds": trained["seconds"],
        "train_wall": trained["wall"],
        "eval_wall": time.perf_counter() - started,
        "probe": probe(run_dir, Path(job["data_dir"])),
        "report": report,
    }
    (run_dir / RESULT_FILE).write_text(json.dumps(result, indent=1) + "\n")
    return result


def plan(args: argparse.Namespace, data_dirs: dict[str, Path]) -> list[dict[str, Any]]:
    """One job per (data set, task, available method, seed); the reference carries the baseline; then the
    supervised reference of each (data set, task, seed)."""
    methods, _ = available_methods(args.methods)
    jobs: list[dict[str, Any]] = []
    for data in benchmark_data(args.quick):
        if data.name not in data_dirs:
            continue
        for task in (t for t in data.tasks if t in args.tasks):
            folder = args.out / "runs" / data.name / task
            names = [*(m.name for m in methods if task in m.tasks), SUPERVISED_REFERENCE]
            for name in names:
                for seed in args.seeds:
                    if name == SUPERVISED_REFERENCE:
                        config = reference_config(
                            budget=args.budget, task=task, seed=seed, frame_size=data.frame_size
                        )
                    else:
                        config = method_config(
                            get_method(name),
                            budget=args.budget,
                            task=task,
                            seed=seed,
                            frame_size=data.frame_size,
                            train_baseline=name == REFERENCE,
                        )
                    jobs.append(
                        {
                            "dataset": data.name,
                            "task": task,
                            "method": name,
                            "seed": seed,
                            # As JSON gives it back (lists, not tuples), so a stored config compares equal.
                            "config": json.loads(json.dumps(config.to_dict())),
                            "data_dir": str(data_dirs[data.name]),
                            "run_dir": str(folder / name / f"seed{seed}"),
                            "baseline_run": str(folder / REFERENCE / f"seed{seed}"),
                            "shared_stage": None
                            if name == SUPERVISED_REFERENCE
                            else str(folder / SUPERVISED_REFERENCE / f"seed{seed}" / SUPERVISED_FILE),
                            "resamples": args.resamples,
                        }
                    )
    return jobs


def _done(job: dict[str, Any], file: str) -> bool:
    """True when the run folder holds `file` written for the same training config (a changed config reruns).

    Both sides go through `TrainConfig.from_dict`, so a run stored before a field with a default was added
    (which therefore trained with that default) still counts as done. A supervised reference is the stage alone:
    it is done when what the stage reads is the same (Algorithm 1's settings do not change it).
    """
    path = Path(job["run_dir"]) / file
    if not path.is_file():
        return False
    stored = json.loads(path.read_text()).get("config")
    try:
        if stored is None:
            return False
        then, now = TrainConfig.from_dict(stored), TrainConfig.from_dict(job["config"])
        if job["method"] == SUPERVISED_REFERENCE:
            return stage_identity(then) == stage_identity(now)
        return then == now
    except (TypeError, ValueError):  # a stored config this code cannot read: train again
        return False


def guarded(work: Callable[[dict[str, Any]], Any], job: dict[str, Any]) -> bool:
    """Run one job; a failure is logged and written to the run's error.txt so one broken learner does not
    end an hour's benchmark (the page lists the run as failed, with that file)."""
    try:
        work(job)
    except Exception:
        error = traceback.format_exc()
        log.error("%s failed:\n%s", job["run_dir"], error)
        Path(job["run_dir"]).mkdir(parents=True, exist_ok=True)
        (Path(job["run_dir"]) / ERROR_FILE).write_text(error)
        return False
    (Path(job["run_dir"]) / ERROR_FILE).unlink(missing_ok=True)
    return True


def _run_all(jobs: list[dict[str, Any]], work: Callable[[dict[str, Any]], Any], workers: int) -> None:
    """Every job through `guarded`, `workers` at a time, with progress logged here (spawned workers log nothing)."""
    started = time.perf_counter()

    def report(count: int, job: dict[str, Any], ok: bool) -> None:
        log.info(
            "%s %d/%d %s: %s (%.0f s so far)",
            work.__name__,
            count,
            len(jobs),
            "done" if ok else "FAILED",
            job["run_dir"],
            time.perf_counter() - started,
        )

    if workers > 1 and len(jobs) > 1:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = {pool.submit(guarded, work, job): job for job in jobs}
            for count, future in enumerate(as_completed(futures), 1):
                report(count, futures[future], future.result())
    else:
        for count, job in enumerate(jobs, 1):
            report(count, job, guarded(work, job))


def _meta(
    args: argparse.Namespace, described: list[dict[str, Any]], jobs: list[dict[str, Any]]
) -> dict[str, Any]:
    _, skipped = available_methods(args.methods)
    return {
        "budget": args.budget,
        "quick": args.quick,
        "seeds": args.seeds,
        "resamples": args.resamples,
        "datasets": described,
        "methods": [
            {"name": m.name, "label": m.label, "overrides": m.overrides, "skipped": skipped.get(m.name)}
            for m in METHODS
            if m.name in args.methods or m.name == REFERENCE
        ]
        + [
            {
                "name": SUPERVISED_REFERENCE,
                "label": SUPERVISED_REFERENCE_LABEL,
                "overrides": {},
                "skipped": None,
            }
        ],
        "machine": {
            "cpu_count": os.cpu_count(),
            "torch_threads_per_run": 1,
            "jobs": args.jobs,
            "platform": platform.platform(),
            "torch": torch.__version__,
            "load_average": list(os.getloadavg()),
        },
        "runs": [str(Path(j["run_dir"]).relative_to(args.out)) for j in jobs],
    }


def _with_earlier_runs(meta: dict[str, Any], earlier_file: Path) -> dict[str, Any]:
    """`meta` plus the runs and methods an earlier invocation on the same grid planned.

    So a method added later (`--methods NEW --tasks classify`) joins the page beside the runs already there,
    instead of replacing them; a different budget, seed list or resample count starts a new page.
    """
    if not earlier_file.is_file():
        return meta
    earlier = json.loads(earlier_file.read_text())
    same_grid = all(earlier.get(k) == meta[k] for k in ("budget", "quick", "seeds", "resamples"))
    if not same_grid:
        return meta
    runs = list(dict.fromkeys([*earlier.get("runs", []), *meta["runs"]]))
    names = {m["name"] for m in meta["methods"]}
    methods = meta["methods"] + [m for m in earlier.get("methods", []) if m["name"] not in names]
    # Data sets and tasks described earlier stay on the page (`--tasks classify` must not drop segmentation).
    datasets = {d["name"]: d for d in earlier.get("datasets", [])}
    for described in meta["datasets"]:
        before = datasets.get(described["name"], {})
        datasets[described["name"]] = {
            **described,
            "tasks": {**before.get("tasks", {}), **described["tasks"]},
        }
    return {**meta, "runs": runs, "methods": methods, "datasets": list(datasets.values())}


def run(args: argparse.Namespace) -> None:
    """Build the data sets, train and evaluate every job not done yet, and write meta.json."""
    started = time.perf_counter()
    datasets = [d for d in benchmark_data(args.quick) if d.name in args.datasets]
    data_dirs = {d.name: build(d, args.out / "data") for d in datasets}
    described = [describe(d, data_dirs[d.name], args.tasks) for d in datasets]
    jobs = plan(args, data_dirs)
    to_train = [j for j in jobs if args.force or not _done(j, TRAIN_FILE)]
    meta = _with_earlier_runs(_meta(args, described, jobs), args.out / META_FILE)
    # Written first as well, so that `--render-only` after an interruption shows the runs that finished.
    unfinished = {"wall_seconds": 0.0, "trained_now": 0, "finished": "not finished (interrupted?)"}
    (args.out / META_FILE).write_text(json.dumps(meta | unfinished, indent=1) + "\n")
    # The supervised references first: every method's run continues from its (data set, task, seed)'s stage.
    # Segmentation runs are the slowest: start them first in each phase so the pool does not end on one.
    to_train.sort(key=lambda j: j["task"] != "segment")
    log.info("%d runs planned, %d to train with %d worker(s)", len(jobs), len(to_train), args.jobs)
    _run_all([j for j in to_train if j["method"] == SUPERVISED_REFERENCE], train_job, args.jobs)
    _run_all([j for j in to_train if j["method"] != SUPERVISED_REFERENCE], train_job, args.jobs)
    to_evaluate = [
        j
        for j in jobs
        if j["method"] != SUPERVISED_REFERENCE  # scored when trained
        and _done(j, TRAIN_FILE)
        and (args.force or j in to_train or not _done(j, RESULT_FILE))
    ]
    _run_all(to_evaluate, evaluate_job, args.jobs)
    meta |= {
        "wall_seconds": time.perf_counter() - started,
        "trained_now": len(to_train),
        "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_average_end": list(os.getloadavg()),
    }
    (args.out / META_FILE).write_text(json.dumps(meta, indent=1) + "\n")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m experiments.generalisation", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("runs/generalisation"))
    parser.add_argument("--docs", type=Path, default=Path("docs"))
    parser.add_argument("--quick", action="store_true", help="debug budget, small simulated sets, 2 seeds")
    parser.add_argument(
        "--budget",
        choices=tuple(BUDGETS),
        default=None,
        help="benchmark (default): the demo preset with 400 segmentation steps; debug with --quick",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--jobs", type=int, default=2, help="runs trained at once (one torch thread each)")
    parser.add_argument("--resamples", type=int, default=None, help="subject-level bootstrap resamples")
    parser.add_argument(
        "--datasets", nargs="+", default=None, help="default: all (--quick: all but held out)"
    )
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    parser.add_argument("--methods", nargs="+", default=method_names())
    parser.add_argument("--force", action="store_true", help="retrain runs that are already done")
    parser.add_argument("--render-only", action="store_true", help="rewrite the page from the JSON files")
    args = parser.parse_args(argv)
    args.budget = args.budget or ("debug" if args.quick else "benchmark")
    args.seeds = args.seeds or ([0, 1] if args.quick else [0, 1, 2])
    args.datasets = args.datasets or dataset_names(args.quick)
    args.resamples = args.resamples if args.resamples is not None else (20 if args.quick else 200)
    for name in args.methods:
        get_method(name)
    unknown = set(args.datasets) - {d.name for d in benchmark_data()}
    if unknown:
        parser.error(f"unknown data set(s) {sorted(unknown)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    check_docs(args.docs)
    if not args.render_only:
        run(args)
    elif not (args.out / META_FILE).is_file():
        raise SystemExit(f"{args.out} holds no {META_FILE}: run the benchmark before --render-only")
    summary = collect(args.out)
    (args.out / "results.json").write_text(json.dumps(summary, indent=1) + "\n")
    write_docs(summary, args.docs)
    log.info("wrote %s from %d runs", args.docs / "results.md", len(summary["runs"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
