"""Controller learners at the same predictor budget: R_w REINFORCE (the reference) against algo "credit" variants.

    nice -n 10 .venv/bin/python -m experiments.recipe.controller_credit --data runs/dev --out runs/credit \\
        --seeds 0 1 2 --variants reinforce credit

Each variant trains with the `demo` preset (classification, reward R_w) per seed and is evaluated on the holdout
(`usqa.trainer.amenability.evaluate`); the non-selective baseline is trained once per seed and shared. Prints a markdown table of
mean ± std over seeds and writes `summary.json` into --out.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from usqa.contracts.training import TrainConfig, apply_overrides
from usqa.trainer.amenability.engine import infer
from usqa.trainer.amenability.evaluate import evaluate
from usqa.trainer.amenability.run import load_run, train
from usqa.trainer.amenability.run_folder import BASELINE_FILE, EVAL_DIR
from usqa.trainer.data import load_task_data
from usqa.trainer.recipe.presets import preset

Variant = Callable[[TrainConfig], TrainConfig]


def _credit(**changes: Any) -> Variant:
    def apply(config: TrainConfig) -> TrainConfig:
        return apply_overrides(config, {"algo": "credit", "credit": changes})

    return apply


def _resampled(variant: Variant, holdout_fraction: float = 0.0) -> Variant:
    def apply(config: TrainConfig) -> TrainConfig:
        config = variant(config)
        reward = replace(config.reward, resample=True, holdout_fraction=holdout_fraction)
        return replace(config, reward=reward)

    return apply


def _warm(variant: Variant, episodes: int) -> Variant:
    return lambda config: replace(
        variant(config), recipe=replace(variant(config).recipe, warmup_episodes=episodes)
    )


VARIANTS: dict[str, Variant] = {
    "reinforce": lambda config: config,
    "reinforce_warm": _warm(lambda config: config, 5),
    "credit": _credit(),
    "credit_frame_only": _credit(policy_weight=0.0),
    "ppo_only": _credit(frame_weight=0.0),
    "credit_hard": _credit(metric="hard"),
    "credit_loo": _credit(advantage="leave_one_out"),
    "credit_one_update": _credit(updates_per_episode=1),
    "credit_resampled": _resampled(_credit()),
    "credit_resampled_heldout": _resampled(_credit(), 0.25),
    "credit_warm": _warm(_credit(), 5),
}


def holdout_scores(run_dir: Path, data_dir: Path) -> np.ndarray:
    """The controller's scores on the holdout frames."""
    config, controller, _, _ = load_run(run_dir)
    data = load_task_data(data_dir, config)
    return infer(controller, data.holdout.frames, torch.device("cpu")).numpy()


def summarise(report: dict[str, Any], scores: np.ndarray, seconds: float) -> dict[str, float]:
    """The figures of one run: metric at 5 % and 15 % per method, kappa, score spread, train time."""
    ratios = report["rejection_ratios"]
    row: dict[str, float] = {}
    for name in ("controller", "random", "confidence", "labels", "baseline"):
        for ratio in (0.05, 0.15):
            row[f"{name}@{ratio:.2f}"] = report["curves"][name]["point"][ratios.index(ratio)]
    row["kappa"] = report["kappa"]["controller"]
    row["kappa_prevalence"] = report["kappa_at_prevalence"]["controller"]
    row["score_p5"], row["score_p95"] = (float(q) for q in np.quantile(scores, [0.05, 0.95]))
    row["train_s"] = seconds
    return row


def run(data: Path, out: Path, seeds: list[int], variants: list[str], preset_name: str) -> dict[str, Any]:
    results: dict[str, Any] = (
        json.loads((out / "summary.json").read_text()) if (out / "summary.json").is_file() else {}
    )
    for seed in seeds:
        baseline_run = out / f"baseline-s{seed}"
        for name in variants:
            key = f"{name}/s{seed}"
            if key in results:
                continue
            run_dir = out / f"{name}-s{seed}"
            has_baseline = (baseline_run / BASELINE_FILE).is_file()
            config = replace(VARIANTS[name](preset(preset_name)), seed=seed, train_baseline=not has_baseline)
            started = time.perf_counter()
            train(config, data, run_dir, progress=False)
            seconds = time.perf_counter() - started
            if not has_baseline:
                baseline_run.mkdir(parents=True, exist_ok=True)
                (baseline_run / BASELINE_FILE).write_bytes((run_dir / BASELINE_FILE).read_bytes())
            report = evaluate(run_dir, data, run_dir / EVAL_DIR, baseline_run=baseline_run, plots=False)
            results[key] = summarise(report, holdout_scores(run_dir, data), seconds)
            (out / "summary.json").write_text(json.dumps(results, indent=2) + "\n")
            print(key, json.dumps({k: round(v, 4) for k, v in results[key].items()}), flush=True)
    return results


def table(results: dict[str, Any], variants: list[str]) -> str:
    """Markdown: mean ± std over seeds of each variant's figures."""
    columns = [
        "controller@0.05", "random@0.05", "confidence@0.05", "labels@0.05", "baseline@0.05",
        "controller@0.15", "random@0.15", "confidence@0.15", "labels@0.15",
        "kappa", "kappa_prevalence", "score_p5", "score_p95", "train_s",
    ]  # fmt: skip
    lines = ["| variant | seeds | " + " | ".join(columns) + " |", "|---" * (len(columns) + 2) + "|"]
    for name in variants:
        rows = [v for k, v in results.items() if k.split("/")[0] == name]
        if not rows:
            continue
        cells = []
        for column in columns:
            values = np.array([r.get(column, np.nan) for r in rows])
            cells.append(f"{values.mean():.3f} ± {values.std():.3f}")
        lines.append(f"| {name} | {len(rows)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=["reinforce", "credit"])
    parser.add_argument("--config", default="demo")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    results = run(args.data, args.out, args.seeds, args.variants, args.config)
    print(table(results, args.variants))


if __name__ == "__main__":
    main()
