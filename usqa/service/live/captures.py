"""Auto-capture: the best frames of a stream, kept while it runs, each downloadable as a PNG.

The rule: among in-scope frames, keep the `limit` highest display scores, no two closer in time than
`spacing_s` (a better frame replaces every kept frame within the spacing, or is refused when one of them is
at least as good), so the strip shows different moments of the scan rather than near-duplicates of one.
Frames arrive in the client's encoding; a kept frame's PNG is made once, when it is first asked for.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import cv2

from usqa.contracts.protocol import Verdict
from usqa.service.frames import decode_bytes, sniff_format

MSG_PNG_FAILED = "could not encode a captured frame as PNG"


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
    """The best `limit` in-scope frames of one stream, at least `spacing_s` apart; `offer` each scored frame."""

    def __init__(self, limit: int, spacing_s: float) -> None:
        self.limit = limit
        self.spacing_s = spacing_s
        self._kept: list[Capture] = []

    @property
    def captures(self) -> list[Capture]:
        """Kept frames, best first (ties: earlier first)."""
        return sorted(self._kept, key=lambda c: (-c.score, c.time_s))

    def would_keep(self, time_s: float, score: float) -> bool:
        """Whether a frame at `time_s` scoring `score` would be kept (so its bytes need keeping at all)."""
        if self.limit == 0:
            return False
        near = [c for c in self._kept if abs(c.time_s - time_s) < self.spacing_s]
        if any(c.score >= score for c in near):
            return False
        others = [c for c in self._kept if c not in near]
        return len(others) < self.limit or score > min(c.score for c in others)

    def offer(self, capture: Capture) -> bool:
        """Keep `capture` if the rule admits it, dropping what it displaces; True when kept."""
        if not self.would_keep(capture.time_s, capture.score):
            return False
        self._kept = [c for c in self._kept if abs(c.time_s - capture.time_s) >= self.spacing_s]
        if len(self._kept) >= self.limit:
            self._kept.remove(min(self._kept, key=lambda c: (c.score, -c.time_s)))
        self._kept.append(capture)
        return True
