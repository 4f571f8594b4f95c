"""PNG figures of an evaluation report: metric-vs-rejection curves (Fig. 4) and contingency tables (Fig. 3)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

LABELS = {
    "controller": "controller rejection",
    "random": "random rejection",
    "confidence": "predictor-confidence rejection",
    "baseline": "non-selective baseline",
    "baseline_confidence": "baseline + its confidence",
    "baseline_controller": "baseline + controller rejection",
    "labels": "amenability-label rejection",
    "baseline_labels": "baseline + amenability labels",
}


def plot_curves(report: dict[str, Any], path: Path, title: str | None = None) -> None:
    """Mean metric (band: +/- one bootstrap std) against the holdout rejection ratio, one line per method."""
    ratios = report["rejection_ratios"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    for name, curve in report["curves"].items():
        mean, std = curve["mean"], curve["std"]
        style = "--" if name.startswith("baseline") else "-"
        ax.plot(ratios, mean, style, marker="o", markersize=3, label=LABELS.get(name, name))
        ax.fill_between(
            ratios,
            [m - s for m, s in zip(mean, std, strict=True)],
            [m + s for m, s in zip(mean, std, strict=True)],
            alpha=0.12,
        )
    ax.axvline(report["operating_point"], color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlabel("rejection ratio on the holdout set")
    ax.set_ylabel(report["metric"])
    ax.set_title(title or f"{report['task']}: reward {report.get('reward')}, {report.get('algo')}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def plot_contingency(report: dict[str, Any], path: Path) -> None:
    """The 2x2 tables (subjective amenability x controller/confidence prediction) at the operating point."""
    tables = report["contingency"]
    fig, axes = plt.subplots(1, len(tables), figsize=(3.2 * len(tables), 3.0), dpi=110, squeeze=False)
    for ax, (name, table) in zip(axes[0], tables.items(), strict=True):
        ax.imshow(table, cmap="Blues")
        for r in range(2):
            for c in range(2):
                ax.text(c, r, str(table[r][c]), ha="center", va="center", fontsize=12)
        ax.set_xticks([0, 1], ["predicted low", "predicted high"], fontsize=8)
        ax.set_yticks([0, 1], ["subjective low", "subjective high"], fontsize=8)
        ax.set_title(f"{LABELS.get(name, name)}\nkappa = {report['kappa'][name]:.2f}", fontsize=8)
    fig.suptitle(f"{report['task']} at {report['operating_point']:.0%} rejection", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
