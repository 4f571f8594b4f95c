"""Auto-capture: the best frames of a stream, kept while it runs, each downloadable as a PNG.

The rule: among in-scope frames, keep the `limit` highest display scores, no two of them *alike*. Two
frames are alike when they are closer in time than `spacing_s`, or when they show the same picture: their
32x32 thumbnails of the model's input differ by less than `same_picture_level` grey levels on average
(`picture_difference`). A better frame replaces every kept frame it is alike, or is refused when one of them
is at least as good (so a tie keeps the earlier frame). The strip then shows different moments of the scan,
and a probe held still or a replayed cine does not give the same picture twice. The level, 1.0 by default,
was measured on simulated sweeps (`python -m experiments.captures`): frames at least 1 s apart differ by
1.72 grey levels or more, and a frame re-encoded as JPEG at quality 80 differs from itself by 0.55 at most
(5 seeds x 300 frames, 64 px input).
Frames arrive in the client's encoding; a kept frame's PNG is made once, when it is first asked for.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import cv2
import numpy as np

from usqa.contracts.protocol import Verdict
from usqa.service.frames import decode_bytes, sniff_format

MSG_PNG_FAILED = "could not encode a captured frame as PNG"
THUMBNAIL_SIZE = 32
SAME_PICTURE_LEVEL = 1.0


def thumbnail(pixels: np.ndarray) -> np.ndarray:
    """A 32x32 float32 thumbnail of a prepared frame, what two frames are compared by."""
    return cv2.resize(pixels, (THUMBNAIL_SIZE, THUMBNAIL_SIZE), interpolation=cv2.INTER_AREA).astype(
        np.float32
    )


def picture_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute grey-level difference of two thumbnails."""
    return float(np.abs(a - b).mean())


@dataclass(frozen=True)
class FrameBytes:
    """A frame as the stream sent it: encoded bytes, or raw 8-bit pixels with their size."""

    data: bytes
    width: int | None = None
    height: int | None = None


@dataclass(eq=False)
class Capture:
    """One kept frame: where it was in the stream, its verdict and score, and its image."""

    frame: int  # the frame's seq in its stream
    time_s: float  # since the stream started
    score: float  # display score
    verdict: Verdict  # the stream's, when the frame was kept
    source: FrameBytes | None
    max_pixels: int
    picture: np.ndarray | None = field(
        default=None, repr=False
    )  # its thumbnail (None: compared by time only)
    _png: bytes | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def nbytes(self) -> int:
        """Bytes this capture holds now (the frame as sent until its PNG exists, then the PNG)."""
        png, source = self._png, self.source
        return len(png) if png is not None else (len(source.data) if source is not None else 0)

    def png(self) -> bytes:
        """The frame as PNG, encoded on first use (in a worker thread: it may decode a DICOM or a JPEG)."""
        with self._lock:
            if self._png is None:
                assert self.source is not None
                self._png = frame_png(self.source, self.max_pixels)
                self.source = None  # the PNG is all that is needed from here on
            return self._png


def frame_png(frame: FrameBytes, max_pixels: int) -> bytes:
    """A streamed frame as PNG bytes; a PNG is kept as sent, anything else is decoded and re-encoded."""
    if frame.width is None and sniff_format(frame.data) == "png":
        return frame.data
    image = decode_bytes(
        frame.data, width=frame.width, height=frame.height, max_pixels=max_pixels, max_frames=1
    )[0]
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError(MSG_PNG_FAILED)
    return bytes(encoded.tobytes())


class CaptureKeeper:
    """The best `limit` in-scope frames of one stream, no two alike (module docstring); `offer` each scored
    frame."""

    def __init__(self, limit: int, spacing_s: float, same_picture_level: float = SAME_PICTURE_LEVEL) -> None:
        self.limit = limit
        self.spacing_s = spacing_s
        self.same_picture_level = same_picture_level
        self._kept: list[Capture] = []

    def _alike(self, kept: Capture, time_s: float, picture: np.ndarray | None) -> bool:
        if abs(kept.time_s - time_s) < self.spacing_s:
            return True
        return (
            picture is not None
            and kept.picture is not None
            and picture_difference(kept.picture, picture) < self.same_picture_level
        )

    @property
    def captures(self) -> list[Capture]:
        """Kept frames, best first (ties: earlier first)."""
        return sorted(self._kept, key=lambda c: (-c.score, c.time_s))

    def would_keep(self, time_s: float, score: float, picture: np.ndarray | None = None) -> bool:
        """Whether a frame at `time_s` scoring `score` (with its thumbnail) would be kept (so its bytes need
        keeping at all)."""
        if self.limit == 0:
            return False
        near = [c for c in self._kept if self._alike(c, time_s, picture)]
        if any(c.score >= score for c in near):
            return False
        others = [c for c in self._kept if c not in near]
        return len(others) < self.limit or score > min(c.score for c in others)

    def offer(self, capture: Capture) -> bool:
        """Keep `capture` if the rule admits it, dropping what it displaces; True when kept."""
        if not self.would_keep(capture.time_s, capture.score, capture.picture):
            return False
        self._kept = [c for c in self._kept if not self._alike(c, capture.time_s, capture.picture)]
        if len(self._kept) >= self.limit:
            self._kept.remove(min(self._kept, key=lambda c: (c.score, -c.time_s)))
        self._kept.append(capture)
        return True
