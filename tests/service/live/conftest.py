"""Typed stream results for the session record and statistics tests."""

from __future__ import annotations

import numpy as np

from usqa.contracts.protocol import Reason, Verdict
from usqa.service.inference.batch_job import BatchTiming
from usqa.service.inference.guidance import GuidanceUpdate
from usqa.service.inference.predictions import classify
from usqa.service.inference.scoring import ScoredFrame
from usqa.service.inference.verdict import FrameSignal, FrameVerdict
from usqa.service.live.results import StreamResult

REASON_OF = {
    Verdict.GOOD: Reason.AMENABLE,
    Verdict.ADJUST: Reason.LOW_SCORE,
    Verdict.NO_SIGNAL: Reason.BLANK,
    Verdict.OUT_OF_SCOPE: Reason.OUT_OF_DISTRIBUTION,
}
TIMING = BatchTiming(queue_s=0.0, prepare_s=0.0, inference_s=0.0, batch_frames=1)


def stream_result(
    seq: int,
    display_score: float,
    verdict: str = Verdict.GOOD,
    *,
    score: float | None = None,
    has_signal: bool = True,
    total_s: float = 0.001,
    version: int = 1,
) -> StreamResult:
    """A scored frame whose own verdict and the stream's are both `verdict`."""
    judged = FrameVerdict(Verdict(verdict), REASON_OF[Verdict(verdict)])
    prediction = classify(np.array([0.25, 0.75], dtype=np.float32), ["absent", "present"])
    signal = FrameSignal(60.0, 20.0, None, b"")
    raw = display_score if score is None else score
    scored = ScoredFrame(seq, raw, 0.5, prediction, signal, display_score, 0.5, judged)
    update = GuidanceUpdate(
        state=judged.verdict, reason=judged.reason, smoothed_score=None, changed=False, has_signal=has_signal
    )
    return StreamResult(seq, scored, judged, update, TIMING, total_s, 0, "fixture", version)
