"""One verdict per frame, with a reason code (usqa/contracts/protocol.py): every answer (/assess, /ws/scan,
`usqa score`) judges a frame here.

A frame is judged in this order, the first that applies wins:
1. `no_signal`: the decoded grayscale frame (after the scan-region crop, before letterbox padding, so padding
   never dims a real echo) is `saturated` (most pixels near white), `blank` (too dark or too flat to be an
   image), or shows `no_contact` (most scan lines dark: the probe is off the skin). In a sequence (a stream, an
   offline cine) a frame identical to the previous ones for `frozen_frames` frames is `frozen`.
2. `out_of_scope` / `out_of_distribution`: the predictor's OOD distance passes the manifest's threshold.
3. `good` / `amenable` when the served rejector's score reaches the pass line, else `adjust` / `low_score`.
   The raw score is compared with the raw line: the display scale is monotone, so this is the display score
   against the drawn line, except on a flat stretch of the display map, where only the raw score tells.

`amenable` is true exactly when the verdict is `good`, so the two never disagree. Stream guidance
(usqa/service/inference/guidance.py) smooths the display score of in-scope frames and keeps these states.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

import cv2
import numpy as np

from usqa.contracts.protocol import IN_SCOPE, Reason, Verdict
from usqa.service.settings import Settings


@dataclass(frozen=True)
class SignalLimits:
    """Thresholds of the no-signal checks on the 8-bit frame before padding (settings `USQA_NO_SIGNAL_*`)."""

    mean_level: float = 8.0  # below: blank
    std_level: float = 3.0  # below: flat, blank
    saturated_level: int = 250  # a pixel at or above this is saturated...
    saturated_fraction: float = 0.5  # ...and a frame with more than this share of them is saturated
    dark_line_level: float = 4.0  # a scan line (column) whose mean is below this is dark...
    dark_line_fraction: float = 0.8  # ...and a frame with more than this share of dark lines has no contact
    frozen_frames: int = 15  # identical frames in a row before a sequence is frozen (0: never)


DEFAULT_LIMITS: Final = SignalLimits()


def signal_limits(settings: Settings) -> SignalLimits:
    """The no-signal limits from `USQA_NO_SIGNAL_*`."""
    return SignalLimits(
        mean_level=settings.no_signal_mean_level,
        std_level=settings.no_signal_std_level,
        saturated_fraction=settings.no_signal_saturated_fraction,
        dark_line_fraction=settings.no_signal_dark_line_fraction,
        frozen_frames=settings.no_signal_frozen_frames,
    )


@dataclass(frozen=True)
class FrameSignal:
    """Signal levels of the frame before padding, and what the no-signal checks found."""

    mean_level: float
    std_level: float
    reason: Reason | None  # blank, saturated or no_contact
    digest: bytes  # of the pixels, to notice a frozen sequence


@dataclass(frozen=True)
class FrameVerdict:
    verdict: Verdict
    reason: Reason

    @property
    def amenable(self) -> bool:
        return self.verdict == Verdict.GOOD

    @property
    def in_scope(self) -> bool:
        """The frame is an image of the trained anatomy: its score means something."""
        return self.verdict in IN_SCOPE


def measure_signal(gray: np.ndarray, limits: SignalLimits) -> FrameSignal:
    """The no-signal checks on a grayscale uint8 frame (scan region, before letterbox padding)."""
    mean, std = cv2.meanStdDev(gray)
    mean_level, std_level = float(mean[0, 0]), float(std[0, 0])
    reason: Reason | None = None
    if np.count_nonzero(gray >= limits.saturated_level) > limits.saturated_fraction * gray.size:
        reason = Reason.SATURATED
    elif mean_level < limits.mean_level or std_level < limits.std_level:
        reason = Reason.BLANK
    else:
        line_means = cv2.reduce(gray, 0, cv2.REDUCE_AVG, dtype=cv2.CV_32F)[0]
        if np.count_nonzero(line_means < limits.dark_line_level) > limits.dark_line_fraction * gray.shape[1]:
            reason = Reason.NO_CONTACT
    # Hashed in place (a copy only for a non-contiguous crop): this runs on every frame of every path.
    digest = hashlib.blake2b(np.ascontiguousarray(gray).data, digest_size=16)
    digest.update(repr(gray.shape).encode())  # same bytes in another shape are another frame
    return FrameSignal(mean_level, std_level, reason, digest.digest())


def judge(
    signal: FrameSignal,
    *,
    score: float,
    threshold: float,
    ood_distance: float | None,
    ood_threshold: float | None,
) -> FrameVerdict:
    """The one verdict of a frame (module docstring); every path calls this."""
    if signal.reason is not None:
        return FrameVerdict(Verdict.NO_SIGNAL, signal.reason)
    if ood_distance is not None and ood_threshold is not None and not ood_distance <= ood_threshold:
        return FrameVerdict(
            Verdict.OUT_OF_SCOPE, Reason.OUT_OF_DISTRIBUTION
        )  # NaN distances too: never trusted
    if score >= threshold:
        return FrameVerdict(Verdict.GOOD, Reason.AMENABLE)
    return FrameVerdict(Verdict.ADJUST, Reason.LOW_SCORE)


def frozen_verdict(verdict: FrameVerdict) -> FrameVerdict:
    """A frame's verdict once its sequence is frozen (no-signal reasons found on the frame itself stay)."""
    return verdict if verdict.verdict == Verdict.NO_SIGNAL else FrameVerdict(Verdict.NO_SIGNAL, Reason.FROZEN)


class FrozenCounter:
    """Counts identical frames in a row in one sequence; `frozen` once `limit` repeats have been seen."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._last: bytes | None = None
        self.repeats = 0

    def add(self, digest: bytes) -> bool:
        self.repeats = self.repeats + 1 if digest == self._last else 0
        self._last = digest
        return self.limit > 0 and self.repeats >= self.limit
