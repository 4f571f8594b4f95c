"""What to tell the sonographer, frame by frame, without flicker: the verdicts of usqa/service/inference/verdict.py.

The display score of in-scope frames is smoothed by an exponential moving average; `good` is entered when the
smoothed score reaches threshold + margin and left only when it falls below threshold - margin (a dead band of
2 x margin, all on the display scale), and any change of state needs `dwell_frames` consecutive frames that
agree. A frame judged `no_signal` or `out_of_scope` is not averaged in; after the dwell the state becomes its
verdict, which also restarts the smoothing so old scores do not colour the new view.

A stream runs it live (usqa/service/api/scan_session.py) and offline scoring replays it (offline.py), so
`usqa score` says what a sonographer would have been told.
"""

from __future__ import annotations

from dataclasses import dataclass

from usqa.contracts.protocol import Reason, Verdict
from usqa.service.inference.verdict import FrameVerdict
from usqa.service.settings import Settings


@dataclass(frozen=True)
class GuidanceConfig:
    smoothing: float = 0.4  # weight of the newest score in the moving average
    margin: float = 0.03  # on the display scale
    dwell_frames: int = 3


def guidance_config(settings: Settings) -> GuidanceConfig:
    """The guidance parameters from `USQA_GUIDANCE_*`."""
    return GuidanceConfig(
        smoothing=settings.guidance_smoothing,
        margin=settings.guidance_margin,
        dwell_frames=settings.guidance_dwell_frames,
    )


@dataclass(frozen=True)
class GuidanceUpdate:
    state: Verdict
    reason: Reason
    smoothed_score: float | None
    changed: bool
    has_signal: bool  # this frame was in scope and its score was averaged in


class GuidanceTracker:
    """One stream's guidance state; `update` once per judged frame, in order."""

    def __init__(self, config: GuidanceConfig) -> None:
        self.config = config
        self.state: Verdict | None = None
        self.reason: Reason | None = None
        self.smoothed: float | None = None
        self._candidate: FrameVerdict | None = None
        self._candidate_frames = 0

    def update(self, frame: FrameVerdict, display_score: float, display_threshold: float) -> GuidanceUpdate:
        """The stream's state after one frame's verdict and its display score."""
        in_scope = frame.in_scope
        if in_scope:
            a = self.config.smoothing
            self.smoothed = (
                display_score if self.smoothed is None else a * display_score + (1 - a) * self.smoothed
            )
            candidate = self._hysteresis(display_threshold)
        else:
            candidate = frame
        changed = self._settle(candidate)
        if changed and self.state in (Verdict.NO_SIGNAL, Verdict.OUT_OF_SCOPE):
            self.smoothed = None
        assert self.state is not None and self.reason is not None
        return GuidanceUpdate(
            state=self.state,
            reason=self.reason,
            smoothed_score=self.smoothed,
            changed=changed,
            has_signal=in_scope,
        )

    def _hysteresis(self, threshold: float) -> FrameVerdict:
        assert self.smoothed is not None
        if self.state == Verdict.GOOD:
            good = self.smoothed >= threshold - self.config.margin
        else:
            good = self.smoothed >= threshold + self.config.margin
        return (
            FrameVerdict(Verdict.GOOD, Reason.AMENABLE)
            if good
            else FrameVerdict(Verdict.ADJUST, Reason.LOW_SCORE)
        )

    def _settle(self, candidate: FrameVerdict) -> bool:
        """Adopt `candidate` once it has held for the dwell; the first frame of a stream decides at once."""
        if self.state is None or candidate.verdict == self.state:
            changed = self.state is None
            self.state, self.reason = candidate.verdict, candidate.reason
            self._candidate, self._candidate_frames = None, 0
            return changed
        if self._candidate is not None and candidate.verdict == self._candidate.verdict:
            self._candidate_frames += 1
        else:
            self._candidate_frames = 1
        self._candidate = candidate
        if self._candidate_frames >= self.config.dwell_frames:
            self.state, self.reason = candidate.verdict, candidate.reason
            self._candidate, self._candidate_frames = None, 0
            return True
        return False
