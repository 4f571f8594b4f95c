"""What to tell the sonographer, frame by frame, without flicker: `good`, `adjust` or `no_signal`.

The score is smoothed by an exponential moving average; `good` is entered when the smoothed score reaches
threshold + margin and left only when it falls below threshold - margin (a dead band of 2 x margin), and
any change of state needs `dwell_frames` consecutive frames that agree. A frame that is nearly black or
flat (probe lifted, frozen or unplugged) carries no signal: its score is not used, and after the dwell the
state becomes `no_signal`, which also restarts the smoothing so old scores do not colour the new view.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from service.settings import Settings

GuidanceState = Literal["good", "adjust", "no_signal"]
GOOD: GuidanceState = "good"
ADJUST: GuidanceState = "adjust"
NO_SIGNAL: GuidanceState = "no_signal"
GUIDANCE_STATES: tuple[GuidanceState, ...] = (GOOD, ADJUST, NO_SIGNAL)


@dataclass(frozen=True)
class GuidanceConfig:
    smoothing: float = 0.4  # weight of the newest score in the moving average
    margin: float = 0.03
    dwell_frames: int = 3
    no_signal_mean_level: float = 8.0
    no_signal_std_level: float = 3.0


def guidance_config(settings: Settings) -> GuidanceConfig:
    """The guidance parameters from `USQA_GUIDANCE_*` and `USQA_NO_SIGNAL_*`."""
    return GuidanceConfig(
        smoothing=settings.guidance_smoothing,
        margin=settings.guidance_margin,
        dwell_frames=settings.guidance_dwell_frames,
        no_signal_mean_level=settings.no_signal_mean_level,
        no_signal_std_level=settings.no_signal_std_level,
    )


@dataclass(frozen=True)
class GuidanceUpdate:
    state: GuidanceState
    smoothed_score: float | None
    changed: bool
    has_signal: bool


class GuidanceTracker:
    """One stream's guidance state; `update` once per scored frame, in order."""

    def __init__(self, config: GuidanceConfig) -> None:
        self.config = config
        self.state: GuidanceState | None = None
        self.smoothed: float | None = None
        self._candidate: GuidanceState | None = None
        self._candidate_frames = 0

    def has_signal(self, mean_level: float, std_level: float) -> bool:
        return mean_level >= self.config.no_signal_mean_level and std_level >= self.config.no_signal_std_level

    def update(self, score: float, threshold: float, mean_level: float, std_level: float) -> GuidanceUpdate:
        signal = self.has_signal(mean_level, std_level)
        if signal:
            a = self.config.smoothing
            self.smoothed = score if self.smoothed is None else a * score + (1 - a) * self.smoothed
        candidate = self._candidate_state(signal, threshold)
        changed = self._settle(candidate)
        if changed and self.state == NO_SIGNAL:
            self.smoothed = None
        return GuidanceUpdate(
            state=self.state or candidate, smoothed_score=self.smoothed, changed=changed, has_signal=signal
        )

    def _candidate_state(self, signal: bool, threshold: float) -> GuidanceState:
        if not signal:
            return NO_SIGNAL
        assert self.smoothed is not None
        if self.state == GOOD:
            return ADJUST if self.smoothed < threshold - self.config.margin else GOOD
        return GOOD if self.smoothed >= threshold + self.config.margin else ADJUST

    def _settle(self, candidate: GuidanceState) -> bool:
        """Adopt `candidate` once it has held for the dwell; the first frame of a stream decides at once."""
        if self.state is None:
            self.state = candidate
            return True
        if candidate == self.state:
            self._candidate, self._candidate_frames = None, 0
            return False
        if candidate == self._candidate:
            self._candidate_frames += 1
        else:
            self._candidate, self._candidate_frames = candidate, 1
        if self._candidate_frames >= self.config.dwell_frames:
            self.state = candidate
            self._candidate, self._candidate_frames = None, 0
            return True
        return False
