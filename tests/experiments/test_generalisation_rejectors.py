"""The results page's rejection section (issue #25) on planted reports."""

from __future__ import annotations

from typing import Any

from experiments.generalisation.rejectors_page import rejector_lines, verdicts


def run(
    seed: int, aurc: dict[str, float], served: str, certified: bool, holdout_risk: float | None
) -> dict[str, Any]:
    return {
        "method": "rw-credit",
        "seed": seed,
        "report": {
            "selective": {name: {"aurc": value} for name, value in aurc.items()},
            "served_rejector": {"name": served, "reason": "lowest validation AURC"},
            "certification": {"alpha": 0.05, "certified": certified, "holdout_risk": holdout_risk},
        },
    }


AURC = {
    "controller": 0.09,
    "softmax": 0.05,
    "confidence": 0.05,
    "doctor": 0.051,
    "fused": 0.049,
    "labels": 0.04,
    "random": 0.12,
}


def test_the_verdicts_count_seeds() -> None:
    runs = [
        run(0, AURC, "fused", True, 0.03),
        run(1, AURC, "softmax", True, 0.07),  # certified, but the check half broke the promise
        run(2, {**AURC, "controller": 0.04}, "controller", False, None),
    ]
    v = verdicts(runs)
    assert v["served"] == {"fused": 1, "softmax": 1, "controller": 1}
    assert v["served_no_worse_than_softmax"] == 3 and v["served_beats_random"] == 3
    assert v["controller_beats_softmax"] == 1
    assert (v["certified"], v["promise_kept"], v["alpha"]) == (2, 1, 0.05)


def test_the_section_says_what_won() -> None:
    runs = [run(s, AURC, "softmax", True, 0.02) for s in range(3)]
    lines = rejector_lines(runs, {"rw-credit": "R_w, credit"})
    text = "\n".join(lines)
    assert "| R_w, credit | 0.0900 ± 0.0000 | 0.0500 ± 0.0000 |" in text
    assert "served softmax 3/3" in text and "the paper's controller beat the softmax in 0/3" in text
    assert "certified in 3/3 seeds at alpha 0.05, the check half's risk <= alpha in 3/3" in text
    old = [{"method": "m", "report": {"selective": {}}}]
    assert rejector_lines(old, {}) == ["Rejectors: not in these runs' reports (evaluated before issue #25)."]
