"""The results page's rejection section (issue #25): per data set and task, each rejector's holdout AURC on
the same predictor, which one the run served, whether it beat the temperature-scaled softmax and random,
whether the paper's controller beat the softmax, and whether the certified line kept its promise on the
check half of the holdout."""

from __future__ import annotations

from typing import Any

from experiments.generalisation.page import mean_std

ROWS: tuple[tuple[str, str], ...] = (
    ("controller", "the paper's controller"),
    ("softmax", "softmax response, temperature-scaled"),
    ("expected_metric", "expected task metric (segmentation: expected Dice)"),
    ("confidence", "softmax response (T = 1)"),
    ("doctor", "DOCTOR"),
    ("fused", "fused (controller + softmax)"),
    ("labels", "ground-truth labels (ceiling)"),
    ("random", "random"),
)


def _aurc(run: dict[str, Any], row: str) -> float | None:
    found = run["report"].get("selective", {}).get(row)
    return None if found is None else float(found["aurc"])


def _cell(values: list[float]) -> str:
    if not values:
        return "–"
    mean, std = mean_std(values)
    return f"{mean:.4f}" if len(values) < 2 else f"{mean:.4f} ± {std:.4f}"


def _served(run: dict[str, Any]) -> str | None:
    served = run["report"].get("served_rejector")
    return None if served is None else str(served["name"])


def verdicts(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts over the runs (seeds) of one method: served rejector, its AURC vs softmax and random, the
    controller vs softmax, and the certified line's promise on the check half."""
    rated = [r for r in runs if _served(r) is not None and _aurc(r, "softmax") is not None]
    served = [_served(r) for r in rated]

    def area(run: dict[str, Any], row: str | None) -> float:
        """The row's AURC, or infinity where the report has none (it beats nothing)."""
        found = None if row is None else _aurc(run, row)
        return float("inf") if found is None else found

    no_worse = sum(area(r, _served(r)) <= area(r, "softmax") + 1e-12 for r in rated)
    beats_random = sum(area(r, _served(r)) < area(r, "random") for r in rated)
    controller_wins = sum(area(r, "controller") < area(r, "softmax") for r in rated)
    certifications = [r["report"]["certification"] for r in rated if "certification" in r["report"]]
    certified = [c for c in certifications if c["certified"]]
    kept = sum(c["holdout_risk"] is not None and c["holdout_risk"] <= c["alpha"] for c in certified)
    return {
        "runs": len(rated),
        "served": {name: served.count(name) for name in dict.fromkeys(served)},
        "served_no_worse_than_softmax": no_worse,
        "served_beats_random": beats_random,
        "controller_beats_softmax": controller_wins,
        "certified": len(certified),
        "promise_kept": kept,
        "alpha": certifications[0]["alpha"] if certifications else None,
    }


def rejector_lines(runs: list[dict[str, Any]], labels: dict[str, str]) -> list[str]:
    """The section's table and its sentence for one data set x task (`runs`: the evaluated RL runs)."""
    methods = list(dict.fromkeys(r["method"] for r in runs))
    if not any(_served(r) for r in runs):
        return ["Rejectors: not in these runs' reports (evaluated before issue #25)."]
    lines = [
        "Holdout AURC (lower is better) of each rejector on the same predictor, mean ± std over seeds:",
        "",
        "| predictor | " + " | ".join(label for _, label in ROWS) + " |",
        "|---|" + "---|" * len(ROWS),
    ]
    for method in methods:
        mine = [r for r in runs if r["method"] == method]
        cells = [_cell([a for r in mine if (a := _aurc(r, row)) is not None]) for row, _ in ROWS]
        lines.append(f"| {labels.get(method, method)} | " + " | ".join(cells) + " |")
    lines.append("")
    for method in methods:
        v: dict[str, Any] = verdicts([r for r in runs if r["method"] == method])
        if not v["runs"]:
            continue
        served = ", ".join(f"{name} {count}/{v['runs']}" for name, count in v["served"].items())
        certified = (
            f"certified in {v['certified']}/{v['runs']} seeds at alpha {v['alpha']}, the check half's risk "
            f"<= alpha in {v['promise_kept']}/{v['certified']}"
            if v["certified"]
            else f"certified in 0/{v['runs']} seeds"
        )
        lines.append(
            f"- {labels.get(method, method)}: served {served}; the served rejector's AURC no worse than the "
            f"temperature-scaled softmax's in {v['served_no_worse_than_softmax']}/{v['runs']} seeds and better "
            f"than random in {v['served_beats_random']}/{v['runs']}; the paper's controller beat the softmax in "
            f"{v['controller_beats_softmax']}/{v['runs']}; {certified}."
        )
    return lines
