"""Tables and figures of `experiments.results`: the generated block of docs/results.md and docs/img/results_*.png."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from docs_gen.blocks import check_block, replace_block

BLOCK = "results"
REWARD_NAMES = {
    "avg": "R_avg (fixed clean val.)",
    "weighted": "R_w (weighted val.)",
    "selective": "R_sel (selective val.)",
}
ALGO_NAMES = {"reinforce": "REINFORCE", "ddpg": "DDPG"}


def _at(curve: dict[str, list[float]], index: int) -> str:
    return f"{curve['mean'][index]:.3f} ± {curve['std'][index]:.3f}"


def _op_index(report: dict[str, Any]) -> int:
    return int(report["rejection_ratios"].index(report["operating_point"]))


def task_table(rows: list[dict[str, Any]]) -> list[str]:
    """Table 1 for one task: baselines first, then one row per reward x algorithm."""
    first = rows[0]["report"]
    i = _op_index(first)
    curves = first["curves"]
    metric = first["metric"]
    op = f"{first['operating_point']:.0%}"
    lines = [
        f"| method | {metric} at {op} rejection (mean ± std) | Δ vs baseline | same predictor, random | "
        f"same predictor, own confidence | paired t-test p | kappa at {op} | kappa at prevalence | train time |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    base = curves["baseline"]["mean"][i]
    lines.append(
        f"| non-selective baseline (no rejection) | {_at(curves['baseline'], i)} | | | | | | | "
        f"{rows[0]['seconds'].get('baseline', float('nan')):.0f} s |"
    )
    lines.append(
        f"| baseline + its own confidence | {_at(curves['baseline_confidence'], i)} | "
        f"{curves['baseline_confidence']['mean'][i] - base:+.3f} | | | | "
        f"{first['kappa'].get('baseline_confidence', float('nan')):.2f} | "
        f"{first['kappa_at_prevalence'].get('baseline_confidence', float('nan')):.2f} | |"
    )
    if "baseline_labels" in curves:
        lines.append(
            f"| baseline + amenability labels (kappa = 1 reference) | {_at(curves['baseline_labels'], i)} | "
            f"{curves['baseline_labels']['mean'][i] - base:+.3f} | | | | | | |"
        )
    for row in rows:
        r = row["report"]
        c = r["curves"]
        ttest = r.get("ttest") or {}
        lines.append(
            f"| {REWARD_NAMES[row['reward']]}, {ALGO_NAMES[row['algo']]} | {_at(c['controller'], i)} | "
            f"{c['controller']['mean'][i] - base:+.3f} | {_at(c['random'], i)} | {_at(c['confidence'], i)} | "
            f"{ttest.get('p', float('nan')):.3g} | {r['kappa']['controller']:.2f} | "
            f"{r['kappa_at_prevalence']['controller']:.2f} | {row['seconds'].get('amenability', 0):.0f} s |"
        )
    return lines


def curves_figure(rows: list[dict[str, Any]], path: Path) -> None:
    first = rows[0]["report"]
    ratios = first["rejection_ratios"]
    fig, ax = plt.subplots(figsize=(7.0, 4.4), dpi=110)
    for name, style in (("baseline", "k--"), ("baseline_confidence", "k:")):
        ax.plot(ratios, first["curves"][name]["mean"], style, label=name.replace("_", " + "))
    for row in rows:
        curve = row["report"]["curves"]["controller"]
        ax.plot(
            ratios,
            curve["mean"],
            marker="o",
            markersize=3,
            linestyle="-" if row["algo"] == "ddpg" else "-.",
            label=f"{REWARD_NAMES[row['reward']].split(' ')[0]} {ALGO_NAMES[row['algo']]}",
        )
    ax.axvline(first["operating_point"], color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlabel("rejection ratio on the holdout set")
    ax.set_ylabel(first["metric"])
    ax.set_title(f"{first['task']}: controller-selected holdout (bootstrap mean)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def contingency_figure(rows: list[dict[str, Any]], path: Path) -> None:
    fig, axes = plt.subplots(1, len(rows), figsize=(2.6 * len(rows), 2.9), dpi=110, squeeze=False)
    for ax, row in zip(axes[0], rows, strict=True):
        r = row["report"]
        table = r["contingency"]["controller"]
        ax.imshow(table, cmap="Blues")
        for y in range(2):
            for x in range(2):
                ax.text(x, y, str(table[y][x]), ha="center", va="center", fontsize=11)
        ax.set_xticks([0, 1], ["pred. low", "pred. high"], fontsize=7)
        ax.set_yticks([0, 1], ["subj. low", "subj. high"], fontsize=7)
        ax.set_title(
            f"{row['reward']} {ALGO_NAMES[row['algo']]}\nkappa {r['kappa']['controller']:.2f}", fontsize=8
        )
    fig.suptitle(
        f"{rows[0]['report']['task']}: controller rejections at {rows[0]['report']['operating_point']:.0%}"
        " vs non-amenable ground truth",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_docs(
    rows: list[dict[str, Any]], settings: dict[str, Any], docs: Path, total_seconds: float
) -> None:
    """Rewrite the generated block `results` of docs/results.md and write the figures."""
    img = docs / "img"
    img.mkdir(parents=True, exist_ok=True)
    training = sum(sum(r["seconds"].values()) for r in rows)
    block = [
        "",
        f"Data: `{json.dumps(settings)}`; training time summed over the cells {training / 60:.0f} min "
        f"(two cells at a time, one torch thread each, on 2 cores shared with other work); this "
        f"regeneration took {total_seconds / 60:.0f} min.",
        "",
    ]
    for task in dict.fromkeys(r["task"] for r in rows):
        task_rows = [r for r in rows if r["task"] == task]
        report = task_rows[0]["report"]
        budget = task_rows[0]["config"]
        block += [
            f"### {task} ({report['metric']}; holdout: {report['frames']} frames, {report['subjects']} subjects; "
            f"non-amenable {report['non_amenable_fraction']:.1%})",
            "",
            f"Budget of every row (`{task_rows[0]['budget']}`): {budget['frame']['size']} px input, "
            f"{budget['episodes']} episodes x {budget['steps_per_episode']} steps x batch {budget['batch_size']}, "
            f"{budget['reward_frames']} reward frames; seed {budget['seed']}; {report['bootstrap_resamples']} "
            "subject-level bootstrap resamples.",
            "",
            *task_table(task_rows),
            "",
            f"![{task} curves](img/results_{task}_curves.png)",
            f"![{task} contingency](img/results_{task}_contingency.png)",
            "",
        ]
        curves_figure(task_rows, img / f"results_{task}_curves.png")
        contingency_figure(task_rows, img / f"results_{task}_contingency.png")
    replace_block(docs / "results.md", BLOCK, "\n".join(block), module="experiments.results")


def check_docs(docs: Path) -> None:
    """Refuse a docs folder whose results page cannot take the block, before an hour of training."""
    check_block(docs / "results.md", BLOCK)
