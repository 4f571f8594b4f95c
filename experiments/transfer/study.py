"""The transfer study (issue #17): how well each starting point adapts to an unseen probe with N labels.

Source: the transrectal prostate probe (`standard` mix). Target: the curvilinear abdomen probe with the
`evidence_loss` mix, a probe no study source sees (the benchmarks use transrectal_prostate and linear_breast;
only `--preset all` heating runs, which this study does not use, ever include it). Starting points, all
built from the source only: random initialisation; a backbone trained normally (the non-selective baseline
predictor of the source run); the heated backbone (seed 000, `heat` on the source); the published champion
(the source run exported to a study registry and read back through `weights.npz`, as `usqa adapt` does).
Each is adapted by `probe` and `finetune` for every N and seed; the champion is also adapted by `controller`
and compared with a controller trained from scratch (Algorithm 1) on the same N frames.

    python -m experiments.transfer            # the full study (see docs/transfer.md for its run time)
    python -m experiments.transfer --quick    # a smoke run in about a minute (tiny data, debug networks)
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from usqa.contracts.adaptation import parse_model_ref
from usqa.contracts.training import ALGOS, Algo, TrainConfig
from usqa.service.registry import CHAMPION, ModelRegistry
from usqa.service.simulator import write_dataset
from usqa.trainer.adaptation.adapt import (
    AdaptOptions,
    Start,
    adapt_networks,
    load_version_start,
    strata_of,
    stratified_draw,
    subset,
)
from usqa.trainer.adaptation.metrics import holdout_metrics
from usqa.trainer.amenability.agreement import non_amenable_fraction
from usqa.trainer.amenability.run import build_networks, load_network, train
from usqa.trainer.amenability.run_folder import BASELINE_FILE, MODEL_FILE
from usqa.trainer.data import TaskData, load_task_data
from usqa.trainer.heating.config import heat_preset
from usqa.trainer.heating.data import load_class_data
from usqa.trainer.heating.heat import heat
from usqa.trainer.heating.run_folder import BACKBONE_FILE
from usqa.trainer.recipe.presets import preset
from usqa.trainer.release.export import ExportOptions, export_run

log = logging.getLogger(__name__)

STARTS: tuple[str, ...] = ("random", "normal", "heated", "champion")
MODES: tuple[str, ...] = ("probe", "finetune")
RESULTS_FILE = "results.json"
ROW_FIELDS = ("mean", "balanced_accuracy", "kappa", "kappa_at_prevalence", "score_spread", "rejection")


@dataclass(frozen=True)
class StudyBudget:
    name: str
    config: str  # TrainConfig / heating preset
    source_frames: int
    target_frames: int
    subjects: int
    size: int
    labels: tuple[int, ...]
    seeds: tuple[int, ...]
    steps: int  # supervised adaptation steps
    episodes: int  # Algorithm 1 episodes (controller adaptation and the scratch controller)
    heat_steps: int


FULL = StudyBudget("full", "demo", 1600, 1600, 40, 64, (8, 16, 32, 64, 128, 256), (0, 1, 2), 60, 10, 300)
QUICK = StudyBudget("quick", "debug", 96, 120, 8, 64, (8, 16), (0,), 3, 2, 4)


def simulate(budget: StudyBudget, out: Path) -> tuple[Path, Path]:
    """The source and target data sets (seeded; reused when already there)."""
    source, target = out / "source", out / "target"
    if not (source / "labels.csv").is_file():
        write_dataset(
            source,
            frames=budget.source_frames,
            subjects=budget.subjects,
            seed=11,
            size=budget.size,
            preset="transrectal_prostate",
            mix="standard",
            force=True,
        )
    if not (target / "labels.csv").is_file():
        write_dataset(
            target,
            frames=budget.target_frames,
            subjects=budget.subjects,
            seed=13,
            size=budget.size,
            preset="curvilinear_abdomen",
            mix="evidence_loss",
            force=True,
        )
    return source, target


def build_starts(budget: StudyBudget, config: TrainConfig, source: Path, out: Path) -> dict[str, Start]:
    """The four starting points, every one trained on the source only."""
    run = out / "source-run"
    if not (run / MODEL_FILE).is_file():
        train(config, source, run, progress=False)
    registry = ModelRegistry(out / "registry")
    if not registry.names():
        # force: the champion is a starting point to measure, published whatever its own verdict says.
        export_run(run, registry, ExportOptions(name="source", alias=CHAMPION, force=True), data_dir=source)
    champion = load_version_start(registry, parse_model_ref("source@champion"))
    backbone = out / "heat" / BACKBONE_FILE
    if not backbone.is_file():
        heat_config = replace(heat_preset(budget.config), steps=budget.heat_steps, frame=config.frame)
        heat(heat_config, load_class_data([source], config.frame), out / "heat", progress=False)
    heated_config = replace(config, backbone_checkpoint=str(backbone))
    heated_predictor, heated_controller = build_networks(heated_config)
    random_predictor, random_controller = build_networks(config)
    normal = load_network(run / BASELINE_FILE, "predictor")
    return {
        "random": Start(config, random_predictor, random_controller, "random"),
        "normal": Start(config, normal, random_controller, "normal"),
        "heated": Start(config, heated_predictor, heated_controller, "heated"),
        "champion": champion,
    }


def scratch_controller(
    config: TrainConfig, data: TaskData, target: Path, n: int, seed: int, episodes: int, out: Path
) -> dict[str, Any]:
    """Algorithm 1 from random weights on the same N labelled frames (the controller adaptation's reference)."""
    labelled = stratified_draw(strata_of(data.train, config.task), n, seed)
    few = TaskData(subset(data.train, labelled), data.val, data.holdout, data.num_classes)
    started = time.perf_counter()
    result = train(
        replace(config, seed=seed, episodes=episodes, train_baseline=False),
        target,
        out,
        progress=False,
        data=few,
    )
    seconds = time.perf_counter() - started
    return {
        **holdout_metrics(config.task, result.predictor, result.controller, data.holdout),
        "seconds": seconds,
    }


def run_study(budget: StudyBudget, out: Path, algo: Algo = "credit") -> dict[str, Any]:
    """Every start x mode x N x seed (and the controller comparison); the rows go to results.json."""
    torch.set_num_threads(1)
    started = time.perf_counter()
    source, target = simulate(budget, out)
    # The controller learns as the product's champion does (`make default-model`: per-frame credit); with
    # the paper's REINFORCE (`--algo reinforce`) the scores barely spread at this budget.
    config = replace(preset(budget.config, "classify", algo=algo), train_baseline=True)
    starts = build_starts(budget, config, source, out)
    data = load_task_data(target, config)
    rows: list[dict[str, Any]] = []

    def record(start: str, mode: str, n: int, seed: int, metrics: dict[str, Any], seconds: float) -> None:
        rows.append(
            {
                "start": start,
                "mode": mode,
                "labels": n,
                "seed": seed,
                "seconds": seconds,
                **{k: metrics[k] for k in ROW_FIELDS},
            }
        )
        log.info("%s %s N=%d seed %d: %.3f (%.1f s)", start, mode, n, seed, metrics["mean"], seconds)

    for n in budget.labels:
        for seed in budget.seeds:
            for name, start in starts.items():
                for mode in MODES:
                    options = AdaptOptions(mode=mode, labels=n, seed=seed, steps=budget.steps)  # type: ignore[arg-type]
                    result = adapt_networks(start, data, options)
                    record(name, mode, n, seed, result.metrics, result.seconds)
            options = AdaptOptions(
                mode="controller", labels=n, seed=seed, steps=budget.steps, episodes=budget.episodes
            )
            result = adapt_networks(starts["champion"], data, options)
            record("champion", "controller", n, seed, result.metrics, result.seconds)
            scratch = scratch_controller(config, data, target, n, seed, budget.episodes, out / "scratch")
            record("random", "controller", n, seed, scratch, scratch["seconds"])
    summary = {
        "budget": asdict(budget),
        "source": "transrectal_prostate, mix standard, seed 11",
        "target": "curvilinear_abdomen, mix evidence_loss, seed 13",
        "algo": algo,
        "holdout_frames": len(data.holdout),
        "holdout_non_amenable": non_amenable_fraction(data.holdout.amenable),
        "wall_s": round(time.perf_counter() - started, 1),
        "rows": rows,
    }
    (out / RESULTS_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the transfer study of issue #17 (docs/transfer.md)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: tiny data, debug networks")
    parser.add_argument("--out", type=Path, help="work folder (default: runs/transfer[-quick])")
    parser.add_argument(
        "--algo", choices=ALGOS, default="credit", help="how every controller learns (Algorithm 1's learner)"
    )
    parser.add_argument("--docs", type=Path, default=Path("docs"), help="where transfer.md and img/ are")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    budget = QUICK if args.quick else FULL
    out = args.out or Path("runs") / ("transfer-quick" if args.quick else "transfer")
    from experiments.transfer.report import check_page, write_report

    check_page(args.docs)
    summary = run_study(budget, out, args.algo)
    write_report(summary, args.docs)
    print(f"transfer study ({budget.name}) in {summary['wall_s']} s; {len(summary['rows'])} rows -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
