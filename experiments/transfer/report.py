"""The transfer study's page: curves (one figure per adaptation mode), tables, and the generated block."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from statistics import mean, pstdev
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from docs_gen.blocks import check_block, replace_block
from usqa.service.registry.card_render import max_kappa

PAGE = "transfer.md"
BLOCK = "transfer"
MODULE = "experiments.transfer"
COLOURS = {"random": "tab:grey", "normal": "tab:blue", "heated": "tab:red", "champion": "tab:green"}


def check_page(docs: Path) -> None:
    """Fail in seconds, before the study runs, when the page cannot take the block."""
    check_block(docs / PAGE, BLOCK)


def _grouped(rows: list[dict[str, Any]], key: str) -> dict[tuple[str, str, int], list[float]]:
    groups: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    for row in rows:
        value = row[key] if key in row else row["rejection"][key]
        groups[(row["start"], row["mode"], row["labels"])].append(float(value))
    return groups


def plot_mode(rows: list[dict[str, Any]], mode: str, path: Path) -> None:
    """Against N (log axis), each seed a dot, the mean a line, per starting point: the holdout balanced
    accuracy of the predictor, or for the controller its kappa at prevalence (what it adds on top)."""
    key = "kappa_at_prevalence" if mode == "controller" else "balanced_accuracy"
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    for start, colour in COLOURS.items():
        mine = [r for r in rows if r["start"] == start and r["mode"] == mode and r.get(key) is not None]
        if not mine:
            continue
        ns = sorted({r["labels"] for r in mine})
        ax.scatter([r["labels"] for r in mine], [r[key] for r in mine], s=10, color=colour, alpha=0.5)
        means = [mean(r[key] for r in mine if r["labels"] == n) for n in ns]
        ax.plot(ns, means, color=colour, label=start if mode != "controller" else f"{start} ({_who(start)})")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("labelled target frames N")
    ax.set_ylabel("holdout kappa at prevalence" if mode == "controller" else "holdout balanced accuracy")
    ax.set_title(f"transfer to an unseen probe: {mode}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def _who(start: str) -> str:
    return "adapted controller" if start == "champion" else "controller from scratch"


def table(rows: list[dict[str, Any]], mode: str, keys: tuple[str, ...]) -> list[str]:
    """Mean +/- std over seeds per starting point and N."""
    groups = {k: _grouped(rows, k) for k in keys}
    starts = [s for s in COLOURS if any(r["start"] == s and r["mode"] == mode for r in rows)]
    ns = sorted({r["labels"] for r in rows})
    lines = [f"| start | {' | '.join(f'N={n}' for n in ns)} |", "|---|" + "---|" * len(ns)]
    for start in starts:
        cells = []
        for n in ns:
            parts = []
            for k in keys:
                values = groups[k].get((start, mode, n), [])
                parts.append(f"{mean(values):.3f} ± {pstdev(values):.3f}" if values else "–")
            cells.append(" / ".join(parts))
        lines.append(f"| {start} | {' | '.join(cells)} |")
    return lines


def write_report(summary: dict[str, Any], docs: Path) -> None:
    rows, budget = summary["rows"], summary["budget"]
    smoke = budget["name"] != "full"
    suffix = "-quick" if smoke else ""
    body: list[str] = []
    if smoke:
        body += [
            "**Smoke run (`--quick`: tiny data, debug networks, one seed). These numbers say the pipeline",
            "works, nothing about transfer; the full study has not been run here.**",
            "",
        ]
    body += [
        f"Source: {summary['source']}. Target: {summary['target']}; {summary['holdout_frames']} holdout "
        f"frames. Budget `{budget['name']}`: N in {list(budget['labels'])}, seeds {list(budget['seeds'])}, "
        f"{budget['steps']} adaptation steps, {budget['episodes']} Algorithm 1 episodes (controllers: "
        f"`algo = {summary.get('algo', 'reinforce')}`). Study wall time "
        f"{summary['wall_s']} s.",
        "",
    ]
    prevalence = summary.get("holdout_non_amenable")
    if prevalence is not None:
        body += [
            f"The target holdout is {prevalence:.1%} non-amenable: rejecting 5 % of it, even a perfect ranking "
            f"has kappa {max_kappa(0.05, prevalence):.3f}; at prevalence (as many rejected as are "
            "non-amenable) a perfect ranking has 1.",
            "",
        ]
    for mode in ("probe", "finetune", "controller"):
        image = f"img/transfer{suffix}-{mode}.png"
        plot_mode(rows, mode, docs / image)
        keys: tuple[str, ...] = ("mean", "balanced_accuracy")
        what = "accuracy / balanced accuracy"
        if mode == "controller":
            keys = ("kappa", "kappa_at_prevalence", "score_spread", "0.05", "0.15")
            what = "kappa at 5 % / kappa at prevalence / score p5-p95 / accuracy at 5 % / at 15 % rejection"
        body += [
            f"#### {mode}: {what} (mean ± std over seeds)",
            "",
            f"![{mode}]({image})",
            "",
            *table(rows, mode, keys),
            "",
        ]
    seconds = _grouped(rows, "seconds")
    body += [
        "#### wall time of one adaptation (s, 1 torch thread)",
        "",
        "| start / mode | mean | max |",
        "|---|---|---|",
    ]
    for start, mode in sorted({(s, m) for s, m, _ in seconds}):
        values = [v for (s, m, _), vs in seconds.items() if (s, m) == (start, mode) for v in vs]
        body.append(f"| {start} / {mode} | {mean(values):.2f} | {max(values):.2f} |")
    replace_block(docs / PAGE, BLOCK, "\n".join(body), module=MODULE)
