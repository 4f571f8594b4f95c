"""One scored frame of a stream, typed: what the session record, its statistics and the result message read.

The stream builds a `StreamResult` per scored frame; the session record and statistics take it as it is, and
its JSON message is made once, when it is sent (`result_message` in usqa/service/api/scan_messages.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from usqa.contracts.protocol import IN_SCOPE, Verdict
from usqa.service.inference.batch_job import BatchTiming
from usqa.service.inference.guidance import GuidanceUpdate
from usqa.service.inference.scoring import ScoredFrame
from usqa.service.inference.verdict import FrameVerdict


@dataclass(frozen=True)
class StreamResult:
    seq: int  # the frame's index among the stream's binary messages
    scored: ScoredFrame
    verdict: FrameVerdict  # this frame alone, once the frozen check has had its say
    update: GuidanceUpdate  # the stream's verdict after smoothing and dwell
    timing: BatchTiming
    total_s: float  # from the frame's arrival until its result is sent
    dropped: int  # frames of the stream replaced by newer ones so far
    model_name: str
    model_version: int
    looks_like: str | None = None  # out of scope here, in scope for this other served exam's model

    @property
    def stream_verdict(self) -> Verdict:
        return self.update.state

    @property
    def amenable(self) -> bool:
        return self.verdict.amenable

    @property
    def capturable(self) -> bool:
        """A candidate for auto-capture: in scope by the stream's verdict and by the frame's own signal.

        The verdict lags a frame by the guidance dwell, so a dark frame inside a good run still says `good`:
        the frame itself is asked too."""
        return self.update.state in IN_SCOPE and self.update.has_signal
