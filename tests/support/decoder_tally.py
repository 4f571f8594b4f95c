"""The decoder malformed-input harness, part one (tests/reliability/test_malformed_decoders.py): the
production limits, the media types and magic prefixes tried, and the tally that counts every case and keeps
every failure."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from tests.reliability.conftest import Figures, unclear_reason
from usqa.service.frames import (
    FrameError,
    FrameSpec,
    FrameTooLargeError,
    TooManyFramesError,
    prepare_frame,
)
from usqa.service.frames.errors import (
    CorruptFrameError,
    EmptyFrameError,
    NoPixelDataError,
    RawSizeMismatchError,
    UnsupportedFormatError,
)
from usqa.service.settings import Settings

# The production limits (Settings' defaults): what a deployment refuses, not a test-only value.
MAX_PIXELS = int(Settings.model_fields["max_frame_pixels"].default)
MAX_FRAMES = int(Settings.model_fields["max_frames_per_input"].default)
LIMITS = {"max_pixels": MAX_PIXELS, "max_frames": MAX_FRAMES}
# A case slower than this counts as a hang (the report compares the slowest with its 2 s target); a
# real hang is stopped by hypothesis' deadline and pytest-timeout.
SLOW_CASE_S = 5.0
DEADLINE_S = 20.0
# An absurd declared size must be refused from the header: this fast, without touching pixel memory.
ABSURD_REFUSAL_MS = 100.0
ABSURD_RSS_GROWTH_MIB = 64.0
PLAIN = FrameSpec(size=128)
CROPPED = FrameSpec(size=128, crop="auto")
KNOWN_CODES = {
    cls.code
    for cls in (
        FrameError,
        UnsupportedFormatError,
        CorruptFrameError,
        EmptyFrameError,
        FrameTooLargeError,
        RawSizeMismatchError,
        NoPixelDataError,
        TooManyFramesError,
    )
}
MEDIA_TYPES = [
    None,
    "image/png",
    "image/jpeg",
    "image/bmp",
    "image/tiff",
    "application/dicom",
    "application/octet-stream",
    "image/gif",
    "text/plain; charset=utf-8",
    "Image/PNG; q=1",
    "",
]
MAGIC_PREFIXES = [
    b"",
    b"\x89PNG\r\n\x1a\n",
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    b"\xff\xd8\xff",
    b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
    b"BM",
    b"II*\x00",
    b"MM\x00*",
    b"\x00" * 128 + b"DICM",
]


# -- the tally: every case counted, every failure kept ---------------------------------------------------


@dataclass
class Tally:
    """Outcome of each case: frames, a FrameError (with its code), or a failure of the property."""

    part: str
    cases: int = 0
    decoded: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    crashes: list[str] = field(default_factory=list)
    unclear: list[str] = field(default_factory=list)
    slow: list[str] = field(default_factory=list)
    slowest_s: float = 0.0

    def run(
        self,
        label: str,
        decode: Callable[[], Sequence[np.ndarray]],
        *,
        expect: type[FrameError] | None = None,
    ) -> None:
        self.cases += 1
        started = time.perf_counter()
        try:
            frames = list(decode())
        except FrameError as exc:
            self.refused[exc.code] = self.refused.get(exc.code, 0) + 1
            reason = unclear_reason(str(exc))
            if reason is not None or exc.code not in KNOWN_CODES:
                self.unclear.append(f"{label}: {reason or 'unknown code ' + exc.code}: {str(exc)[:200]!r}")
            if expect is not None and not isinstance(exc, expect):
                self.crashes.append(f"{label}: expected {expect.__name__}, got {type(exc).__name__}: {exc}")
        except Exception as exc:  # the property under test: nothing but a FrameError escapes
            stack = "".join(traceback.format_exception(exc)[-6:])
            self.crashes.append(f"{label}: {type(exc).__name__}: {exc}\n{stack}")
        else:
            problem = _frames_problem(frames) or _prepare_problem(frames)
            if expect is not None:
                problem = f"expected {expect.__name__}, got {len(frames)} frames"
            if problem is not None:
                self.crashes.append(f"{label}: {problem}")
            else:
                self.decoded += 1
        finally:
            elapsed = time.perf_counter() - started
            self.slowest_s = max(self.slowest_s, elapsed)
            if elapsed > SLOW_CASE_S:
                self.slow.append(f"{label}: {elapsed:.2f} s")

    def finish(self, figures: Figures) -> None:
        figures.count("decoders.cases", self.cases)
        figures.count(f"decoders.{self.part}.cases", self.cases)
        figures.count("decoders.decoded", self.decoded)
        figures.count("decoders.refused", sum(self.refused.values()))
        figures.count("decoders.crashes", len(self.crashes))
        figures.count("decoders.unclear_messages", len(self.unclear))
        figures.count("decoders.hangs", len(self.slow))
        figures.peak("decoders.slowest_case_ms", round(self.slowest_s * 1000, 1))
        failures = [*self.crashes, *self.unclear, *self.slow]
        assert self.cases > 0
        assert not failures, f"{len(failures)} of {self.cases} {self.part} cases failed:\n" + "\n".join(
            failures[:5]
        )


def _frames_problem(frames: list[np.ndarray]) -> str | None:
    if not frames:
        return "no frames and no error"
    if len(frames) > MAX_FRAMES:
        return f"{len(frames)} frames, over the limit of {MAX_FRAMES}"
    for frame in frames:
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 2:
            return f"a frame that is not uint8 HxW: {type(frame).__name__} {getattr(frame, 'shape', '')}"
        if frame.size == 0 or frame.size > MAX_PIXELS:
            return f"a frame of {frame.shape} pixels"
    return None


def _prepare_problem(frames: list[np.ndarray]) -> str | None:
    """What the service does next with every decoded frame: `prepare_frame` (the first also cropped)."""
    try:
        for index, frame in enumerate(frames):
            for spec in (PLAIN, CROPPED) if index == 0 else (PLAIN,):
                prepared = prepare_frame(frame, spec)
                if prepared.shape != (spec.size, spec.size) or prepared.dtype != np.uint8:
                    return f"prepare_frame gave {prepared.shape} {prepared.dtype}"
    except Exception as exc:
        return f"prepare_frame of a {frames[0].shape} frame raised {type(exc).__name__}: {exc}"
    return None
