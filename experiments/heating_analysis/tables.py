"""The tables of the heated-backbone analysis, written as the generated block `heating` of docs/heating.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from docs_gen.blocks import replace_block
from experiments.heating_analysis.runs import FRAME_SIZE, HEAT_SHARE

BLOCK = "heating"


def _cell(values: list[float]) -> str:
    values = [v for v in values if not np.isnan(v)]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{np.mean(values):.4f} ± {np.std(values):.4f}"


def _metric_rows(
    seeds: list[dict[str, Any]], rows: list[tuple[str, str]], metrics: tuple[str, ...]
) -> list[str]:
    header = "| model | " + " | ".join(METRIC_TITLES[m] for m in metrics) + " |"
    lines = [header, "|" + " --- |" * (len(metrics) + 1)]
    for key, title in rows:
        if key not in seeds[0]["rows"]:
            continue
        cells = [_cell([s["rows"][key][m] for s in seeds]) for m in metrics]
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    return lines


METRIC_TITLES = {
    "entropy": "Entropy",
    "precision": "Precision",
    "recall": "Recall",
    "f1": "F1",
    "auroc": "AUROC",
    "balanced_accuracy": "B. Acc.",
}
TABLE_A = (
    ("normal", "(Normal) clean frames"),
    ("cutmix", "(CutMix) clean frames"),
    ("heated/clean", "(Heated) clean frames"),
    ("heated/masked", "(Heated) masked frames, policy masks"),
    ("heated/masked_dataset", "(Heated) masked frames, dataset-level masks"),
    ("heated/finetuned", "(Fine-tuned heated) clean frames"),
)
TABLE_B = (
    ("normal", "Baseline (no augmentation)"),
    ("heated/finetuned", "Heated (eq. 8) → fine-tuned"),
    ("heated_baseline/finetuned", "Heated (eq. 8 + moving-average baseline) → fine-tuned"),
    ("cutmix", "CutMix"),
    ("randaugment", "RandAugment (2 ops, magnitude 9)"),
)


def amenability_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "| initial backbone of predictor and controller | acc., all frames | acc., controller rejects 5 % "
        "| acc., random 5 % rejected | kappa (controller vs human label) | t-test vs non-selective baseline |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    titles = {
        "scratch": "none (random init)",
        "heated": "heated backbone",
        "normal": "normally pre-trained backbone",
    }
    baseline_acc = None
    for name, result in results.items():
        r = result["report"]
        op = r["rejection_ratios"].index(r["operating_point"])
        controller, random = r["curves"]["controller"], r["curves"]["random"]
        if "baseline" in r["curves"]:
            baseline_acc = r["curves"]["baseline"]["point"][0]
        t = r["ttest"]
        ttest = "n/a" if t is None else f"Δ {t['mean_difference']:+.4f}, p = {t['p']:.3g}"
        lines.append(
            f"| {titles.get(name, name)} | {controller['point'][0]:.4f} | {controller['point'][op]:.4f} "
            f"(bootstrap {controller['mean'][op]:.4f} ± {controller['std'][op]:.4f}) | {random['point'][op]:.4f} "
            f"| {r['kappa']['controller']:.3f} | {ttest} |"
        )
    if baseline_acc is not None:
        lines.append(
            f"| *non-selective baseline predictor (random init, no controller)* | {baseline_acc:.4f} | | | | |"
        )
    return lines


def write_docs(summary: dict[str, Any], docs: Path) -> Path:
    seeds = summary["seeds"]
    n = len(seeds)
    spread = f"mean ± std over {n} seeds" if n > 1 else "one seed"
    block = [
        "",
        f"Measured on {summary['date']}: {summary['compute_seconds'] / 60:.1f} min of training and evaluation "
        f"on 2 shared CPU cores "
        f"(torch {torch.__version__}, 1 thread, `nice`). Data: {summary['heat_data']}. Budget per row of "
        f"(a)/(b): {summary['steps']} optimiser steps of 32 frames ({round(summary['steps'] * HEAT_SHARE)} heating "
        f"+ {summary['steps'] - round(summary['steps'] * HEAT_SHARE)} fine-tuning for the heated rows); the `default` "
        f"backbone on {FRAME_SIZE} px frames; {len(summary['class_names'])} classes "
        f"(preset × organ label); holdout: {summary['holdout_frames']} frames of "
        f"{summary['holdout_subjects']} subjects; {spread}.",
        "",
        "### (a) Entropy and performance of normal, heated and fine-tuned heated models (Table 1)",
        "",
        *_metric_rows(seeds, list(TABLE_A), tuple(METRIC_TITLES)),
        "",
        "### (b) Heated + fine-tuned against augmentations, same budget (Table 2)",
        "",
        *_metric_rows(seeds, list(TABLE_B), tuple(m for m in METRIC_TITLES if m != "entropy")),
        "",
    ]
    if summary.get("amenability"):
        a = summary["amenability"]
        block += [
            f"### (c) The amenability pair (seed 004) with and without the heated backbone, {a['reward']} reward, "
            f"{a['algo']}",
            "",
            f"Data: {a['data']}. Budget of every row: the RL benchmark's (experiments/results/benchmark.py): {a['budget']}. "
            "The heated and the normal backbone are the seed-0 models of (a)/(b); they initialise both the "
            "predictor and the controller. Accuracy on the holdout split at the paper's operating point "
            "(5 % of frames rejected by the controller); bootstrap over subjects (200 resamples).",
            "",
            *amenability_table(a["results"]),
            "",
        ]
    else:
        block += ["### (c) The amenability pair", "", "Not run (`--skip-amenability`).", ""]
    block += [
        "### (d) Noise masks and intensity histograms (Figure 6)",
        "",
        "![masks](img/heating_masks.png)",
        "",
        "![training](img/heating_training.png)",
        "",
        "Seconds per run (seed 0): "
        + ", ".join(f"{k} {v:.0f}" for k, v in seeds[0]["seconds"].items())
        + ".",
        "",
    ]
    path = docs / "heating.md"
    replace_block(path, BLOCK, "\n".join(block), module="experiments.heating_analysis")
    return path
