"""The one place that reads a frame's verdict and display score out of a result message.

Result messages carry `guidance` (good / adjust / no_signal) and `score` today; the scope work adds one
`verdict` per frame (also `out_of_scope`) and a calibrated `display_score`. Everything that judges results
(the session record, auto-capture, the Python client) reads them through these functions, so that change
lands here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

GOOD: Final = "good"
ADJUST: Final = "adjust"
NO_SIGNAL: Final = "no_signal"
OUT_OF_SCOPE: Final = "out_of_scope"
# Every verdict a report counts time in, in the order it shows them.
VERDICTS: Final = (GOOD, ADJUST, NO_SIGNAL, OUT_OF_SCOPE)
# Verdicts of frames that show the anatomy the model judges (candidates for auto-capture).
IN_SCOPE: Final = frozenset({GOOD, ADJUST})


def verdict_of(result: Mapping[str, Any]) -> str:
    """The frame's verdict: `verdict` when the message has one, else its `guidance`."""
    verdict = result.get("verdict")
    return str(verdict if verdict is not None else result["guidance"])


def display_score_of(result: Mapping[str, Any]) -> float:
    """The score people see: `display_score` when the message has one, else the raw `score`."""
    score = result.get("display_score")
    return float(score if score is not None else result["score"])


def in_scope(result: Mapping[str, Any]) -> bool:
    return verdict_of(result) in IN_SCOPE
