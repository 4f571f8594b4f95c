"""The one place that reads a frame's verdict and display score out of a result message.

Result messages carry `guidance` (good / adjust / no_signal) and `score` today; the scope work adds one
`verdict` per frame (also `out_of_scope`) and a calibrated `display_score`. Everything that judges results
(the session record, auto-capture, the Python client) reads them through these functions, so that change
lands here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from usqa.contracts.protocol import IN_SCOPE, Verdict


def verdict_of(result: Mapping[str, Any]) -> str:
    """A frame's verdict: its `verdict`, else a stream result's `guidance`, else (an /assess frame) whether
    it is amenable."""
    for key in ("verdict", "guidance"):
        if result.get(key) is not None:
            return str(result[key])
    return Verdict.GOOD if result["amenable"] else Verdict.ADJUST


def display_score_of(result: Mapping[str, Any]) -> float:
    """The score people see: `display_score`, else the raw `score` (stream) or `amenability_score` (/assess)."""
    for key in ("display_score", "score", "amenability_score"):
        if result.get(key) is not None:
            return float(result[key])
    raise KeyError("display_score")


def in_scope(result: Mapping[str, Any]) -> bool:
    return verdict_of(result) in IN_SCOPE
