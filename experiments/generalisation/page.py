"""The generated block `generalisation` of docs/results.md, rendered only from the benchmark's JSON files."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from docs_gen.blocks import check_block, replace_block
from experiments.generalisation.data import READ_BEFORE_A_DECISION
from experiments.generalisation.methods import (
    NON_SELECTIVE_LABEL,
    REFERENCE,
    SUPERVISED_REFERENCE,
    SUPERVISED_REFERENCE_LABEL,
)

BLOCK = "generalisation"
MODULE = "experiments.generalisation"
# Issue #13's bar for "the non-selective predictor learns": its margin over the trivial baseline.
BAR: dict[str, float] = {"classify": 0.10, "segment": 0.5}
BAR_TEXT = {
    "classify": ">= 10 accuracy points over the majority class",
    "segment": "Dice >= 0.5 over the empty mask",
}
# Issue 24: the non-selective predictor should be within 2 points of the supervised reference (mean over seeds).
REFERENCE_GAP = 0.02
# The rejection ratios the page shows (the paper's operating points); 0 % is the predictor on every frame.
SHOWN_RATIOS = (0.0, 0.05, 0.15)
COLLAPSE_SHARE = 0.95
RULES = (
    ("controller", "its controller"),
    ("random", "random"),
    ("confidence", "its own confidence"),
    ("labels", "ground truth (ceiling)"),
)
BASELINE_RULES = (
    ("baseline", "nothing"),
    ("baseline_confidence", "its own confidence"),
    ("baseline_labels", "ground truth (ceiling)"),
)


def collect(out: Path) -> dict[str, Any]:
    """meta.json plus the `result.json` of every planned run (those without one are listed with the error)."""
    meta = json.loads((out / "meta.json").read_text())
    runs, missing = [], []
    for run in meta["runs"]:
        path = out / run / "result.json"
        if path.is_file():
            runs.append(json.loads(path.read_text()))
        else:
            error = out / run / "error.txt"
            last = error.read_text().strip().splitlines()[-1] if error.is_file() else "no result.json"
            missing.append(f"{run} ({last})")
    return {"meta": meta, "runs": runs, "missing": missing}


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1; 0 for a single value)."""
    array = np.asarray(values, np.float64)
    if array.size == 0:
        return math.nan, math.nan
    return float(array.mean()), float(array.std(ddof=1)) if array.size > 1 else 0.0


def _fmt(values: list[float], digits: int = 3) -> str:
    if not values:
        return "n/a"
    mean, std = mean_std(values)
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _point(report: dict[str, Any], curve: str, ratio: float) -> float | None:
    curves = report["curves"]
    if curve not in curves:
        return None
    return float(curves[curve]["point"][report["rejection_ratios"].index(ratio)])


def _values(runs: list[dict[str, Any]], curve: str, ratio: float) -> list[float]:
    # The supervised reference's runs have no rejection report: they are not on any curve.
    return [v for r in runs if "report" in r and (v := _point(r["report"], curve, ratio)) is not None]


def learns(task: str, trivial: dict[str, Any], baseline_runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Whether the non-selective predictor beats the trivial baseline by the bar, and why not when it does not."""
    values = _values(baseline_runs, "baseline", 0.0)
    if not values:
        return {"values": [], "passes": False, "reason": "no finished run"}
    mean, _ = mean_std(values)
    margin = mean - trivial["metric"]
    seeds_passing = sum(v - trivial["metric"] >= BAR[task] for v in values)
    passes = margin >= BAR[task]
    reason = ""
    if not passes:
        probes = [r["probe"].get("baseline", {}) for r in baseline_runs]
        seeds = f"of holdout frames in {{}}/{len(probes)} seeds"
        if task == "classify":
            stuck = [p for p in probes if p.get("top_class_share", 0) >= COLLAPSE_SHARE]
            classes = sorted({p.get("top_class") for p in stuck}, key=str)
            if trivial["metric"] + BAR[task] > 1:
                reason = f"bar out of reach: the majority class alone scores {trivial['metric']:.3f}"
            elif stuck:
                at_majority = classes == [trivial.get("majority_class")]
                what = (
                    "at majority class"
                    if at_majority
                    else f"stuck on one class ({', '.join(map(str, classes))})"
                )
                reason = f"predictor {what}: one class for >= 95 % " + seeds.format(len(stuck))
        else:
            stuck = [p for p in probes if p.get("empty_mask_share", 0) >= COLLAPSE_SHARE]
            if stuck:
                reason = "predictor outputs empty masks for >= 95 % " + seeds.format(len(stuck))
        reason = reason or f"predictor learns something but stays below the bar (margin {margin:+.3f})"
    return {
        "values": values,
        "margin": margin,
        "passes": passes,
        "seeds_passing": seeds_passing,
        "reason": reason,
    }


def reference_values(runs: list[dict[str, Any]]) -> list[float]:
    """The supervised reference's holdout metric per seed (its runs have no rejection report)."""
    return [r["holdout"]["metric"] for r in runs if r["method"] == SUPERVISED_REFERENCE]


def reference_gap(non_selective: list[float], reference: list[float]) -> str:
    """How far the non-selective predictor's mean is from the supervised reference's, in words for the page."""
    if not non_selective or not reference:
        return ""
    gap = mean_std(non_selective)[0] - mean_std(reference)[0]
    if gap < -REFERENCE_GAP:
        return f"{gap:+.3f} (**more than {REFERENCE_GAP * 100:.0f} points below**)"
    return f"{gap:+.3f} (within {REFERENCE_GAP * 100:.0f} points or above)"


def _kappa(runs: list[dict[str, Any]], key: str, field: str = "kappa") -> str:
    values = [r["report"][field][key] for r in runs if key in r["report"].get(field, {})]
    values = [v for v in values if v is not None and not math.isnan(v)]
    return _fmt(values, 2) if values else ""


def _spread(runs: list[dict[str, Any]]) -> str:
    scores = [r["probe"]["controller_scores"] for r in runs]
    p5, p95 = mean_std([s["p5"] for s in scores])[0], mean_std([s["p95"] for s in scores])[0]
    return f"{p5:.2f}–{p95:.2f}"


def _seconds(runs: list[dict[str, Any]], stage: str) -> str:
    values = [r["seconds"][stage] for r in runs if stage in r["seconds"]]
    return f"{mean_std(values)[0]:.0f} ± {mean_std(values)[1]:.0f} s" if values else ""


def task_table(
    dataset: dict[str, Any],
    task: str,
    runs: list[dict[str, Any]],
    labels: dict[str, str],
    supervised: list[dict[str, Any]] | None = None,
) -> list[str]:
    """One data set x task: trivial baseline, the supervised reference, the non-selective predictor, then four
    rows per method (`runs` are the evaluated runs, `supervised` the supervised reference's)."""
    trivial = dataset["tasks"][task]["trivial"]
    metric = runs[0]["report"]["metric"]
    op = runs[0]["report"]["operating_point"]
    head = " | ".join(f"{metric} at {r:.0%}" for r in SHOWN_RATIOS)
    lines = [
        f"| predictor | rejection by | {head} | kappa vs ground truth at {op:.0%} | kappa at prevalence | "
        "controller score p5–p95 (holdout) | training time per seed |",
        "|---|---|" + "---|" * len(SHOWN_RATIOS) + "---|---|---|---|",
        f"| trivial: {trivial['name']} | nothing | "
        + f"{trivial['metric']:.3f} | " * len(SHOWN_RATIOS)
        + " | | | |",
    ]
    if supervised:
        # Its metric on every holdout frame; it rejects nothing, so the other columns stay empty.
        row = [_fmt(reference_values(supervised))] + [""] * (len(SHOWN_RATIOS) + 2)
        row.append(_seconds(supervised, "supervised"))
        lines.append(f"| {SUPERVISED_REFERENCE_LABEL} | nothing | " + " | ".join(row) + " |")
    reference = [r for r in runs if r["method"] == REFERENCE]
    for curve, rule in BASELINE_RULES:
        cells = " | ".join(_fmt(_values(reference, curve, ratio)) for ratio in SHOWN_RATIOS)
        kappa = _kappa(reference, curve) if curve == "baseline_confidence" else ""
        at_prevalence = _kappa(reference, curve, "kappa_at_prevalence") if kappa else ""
        seconds = _seconds(reference, "baseline") if curve == "baseline" else ""
        lines.append(
            f"| {NON_SELECTIVE_LABEL} | {rule} | {cells} | {kappa} | {at_prevalence} | | {seconds} |"
        )
    for method in dict.fromkeys(r["method"] for r in runs):
        mine = [r for r in runs if r["method"] == method]
        for curve, rule in RULES:
            cells = " | ".join(_fmt(_values(mine, curve, ratio)) for ratio in SHOWN_RATIOS)
            kappa = _kappa(mine, curve) if curve in ("controller", "confidence") else ""
            at_prevalence = _kappa(mine, curve, "kappa_at_prevalence") if kappa else ""
            spread = _spread(mine) if curve == "controller" else ""
            seconds = _seconds(mine, "amenability") if curve == "controller" else ""
            who = labels.get(method, method) if curve == "controller" else "same predictor"
            lines.append(f"| {who} | {rule} | {cells} | {kappa} | {at_prevalence} | {spread} | {seconds} |")
    return lines


def role(dataset: dict[str, Any]) -> str:
    """The data set's role, with the dates it was built and first evaluated where recorded (issue 24)."""
    dates = [
        f"{what} {dataset[key]}"
        for key, what in (("built", "built"), ("first_evaluated", "first evaluated"))
        if dataset.get(key)  # absent from pages made before the dates were recorded
    ]
    return role_note(dataset) + (f" ({', '.join(dates)})" if dates else "")


def role_note(dataset: dict[str, Any]) -> str:
    """The role's note, and when a held-out set's rows were read before a decision (from the code's record)."""
    read = READ_BEFORE_A_DECISION.get(dataset.get("name", ""))
    if read is None:
        return str(dataset["role_note"])
    kind = str(dataset["role_note"]).split(":", 1)[0]  # "held out", "real frames"
    return f"{kind}: reported, and read before a recipe decision on {read}"


def render(summary: dict[str, Any]) -> str:
    from experiments.generalisation.rejectors_page import rejector_lines  # it reads mean_std from here

    """The block's Markdown: setup line, data sets, the learning check, one table per data set x task."""
    meta, runs = summary["meta"], summary["runs"]
    machine = meta["machine"]
    labels = {m["name"]: m["label"] for m in meta["methods"]}
    training = sum(sum(r["seconds"].values()) for r in runs)
    seeds = ", ".join(map(str, meta["seeds"]))
    lines = [
        "",
        f"Budget `{meta['budget']}`{' (--quick)' if meta['quick'] else ''}; training seeds {seeds} (mean ± std over "
        f"seeds, std with ddof 1, of the point estimate on the whole holdout split); {meta['resamples']} "
        f"subject-level bootstrap resamples per run in `eval/report.json`. {len(runs)} runs; training time summed "
        f"over runs {training / 60:.1f} min; wall time of the last invocation {meta['wall_seconds'] / 60:.1f} min "
        f"({meta['trained_now']} runs trained in it) with {machine['jobs']} run(s) at a time, "
        f"{machine['torch_threads_per_run']} torch thread each, {machine['cpu_count']} CPUs, load average "
        f"{meta.get('load_average_end', machine['load_average'])[0]:.1f} at the end; finished {meta['finished']}.",
        "",
        "| data set | role | frames (subjects) | input | task | non-amenable: all / holdout | trivial baseline (holdout) |",
        "|---|---|---|---|---|---|---|",
    ]
    for d in meta["datasets"]:
        for task, t in d["tasks"].items():
            prevalence = t["prevalence"]
            lines.append(
                f"| `{d['name']}` | {role(d)} | {d['frames']} ({d['subjects']}) | {d['frame_size']} px | "
                f"{task} | {prevalence['all']:.1%} / {prevalence['holdout']:.1%} | "
                f"{t['trivial']['name']}: {t['trivial']['metric']:.3f} |"
            )
    lines += ["", "Commands: " + "; ".join(f"`{d['name']}`: `{d['command']}`" for d in meta["datasets"]), ""]
    lines += [
        "**Does the non-selective predictor learn?** (bar: "
        + "; ".join(f"{k}: {v}" for k, v in BAR_TEXT.items())
        + f"; and within {REFERENCE_GAP * 100:.0f} points of the {SUPERVISED_REFERENCE_LABEL}, mean over seeds)",
        "",
        "| data set | task | trivial baseline | non-selective predictor | margin | seeds over the bar | verdict | "
        f"{SUPERVISED_REFERENCE_LABEL} | non-selective - reference |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    sections: list[str] = []
    for d in meta["datasets"]:
        for task, t in d["tasks"].items():
            here = [r for r in runs if r["dataset"] == d["name"] and r["task"] == task]
            supervised = [r for r in here if r["method"] == SUPERVISED_REFERENCE]
            mine = [r for r in here if r["method"] != SUPERVISED_REFERENCE]
            check = learns(task, t["trivial"], [r for r in mine if r["method"] == REFERENCE])
            verdict = "beats the bar" if check["passes"] else f"**does not**: {check['reason']}"
            margin = f"{check['margin']:+.3f}" if check["values"] else ""
            reference = reference_values(supervised)
            lines.append(
                f"| `{d['name']}` | {task} | {t['trivial']['metric']:.3f} | {_fmt(check['values'])} | {margin} | "
                f"{check.get('seeds_passing', 0)}/{len(check['values'])} | {verdict} | {_fmt(reference)} | "
                f"{reference_gap(check['values'], reference)} |"
            )
            if not mine:
                continue
            sections += [
                f"### `{d['name']}`, {task} ({role_note(d)})",
                "",
                f"Holdout: {mine[0]['report']['frames']} frames, {mine[0]['report']['subjects']} subjects, "
                f"non-amenable {mine[0]['report']['non_amenable_fraction']:.1%}.",
                "",
                *task_table(d, task, mine, labels, supervised),
                "",
                *rejector_lines(mine, labels),
                "",
            ]
    lines += ["", *sections]
    skipped = [m for m in meta["methods"] if m["skipped"]]
    if skipped:
        lines += ["Methods not run in this checkout:", ""]
        lines += [f"- {m['label']}: {m['skipped']}." for m in skipped]
        lines.append("")
    if summary["missing"]:
        lines += [
            "Runs without a result (interrupted or failed): "
            + ", ".join(f"`{m}`" for m in summary["missing"]),
            "",
        ]
    return "\n".join(lines)


def write_docs(summary: dict[str, Any], docs: Path) -> None:
    """Rewrite the block `generalisation` of docs/results.md (the rest of the page is kept)."""
    replace_block(docs / "results.md", BLOCK, render(summary), module=MODULE)


def check_docs(docs: Path) -> None:
    """Refuse a results page without the block's markers before anything is trained."""
    check_block(docs / "results.md", BLOCK)
