"""The demo's stream: a simulated cine looped through /ws/scan in a thread, with a terminal view of what
scored it, and which version scored which frames."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from usqa.client import Client
from usqa.contracts.protocol import MessageType

STREAM_FPS = 15.0
# The terminal view: a line every VIEW_EVERY frames (one a second) at the start and after a swap, then one
# every QUIET_EVERY frames (ten seconds) while the job's own lines tell the story.
VIEW_EVERY = 15
QUIET_EVERY = 150
LIVELY_FRAMES = 90
JOIN_TIMEOUT_S = 30.0


@dataclass
class Span:
    """Consecutive frames scored by one version."""

    version: int
    first: int
    last: int
    frames: int = 1


@dataclass
class StreamView:
    results: int = 0
    amenable: int = 0
    errors: int = 0
    spans: list[Span] = field(default_factory=list)
    swaps: list[tuple[int, int, int]] = field(default_factory=list)  # (from, to, frames scored before it)
    failure: str | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def on_message(self, message: dict[str, Any], latency_ms: float | None) -> None:
        kind = message["type"]
        if kind == MessageType.RESULT:
            self.results += 1
            self.amenable += bool(message["amenable"])
            version, seq = int(message["model"]["version"]), int(message["seq"])
            if self.spans and self.spans[-1].version == version:
                span = self.spans[-1]
                span.last, span.frames = seq, span.frames + 1
            else:
                self.spans.append(Span(version, seq, seq))
            if self._shown(seq):
                bar = "#" * round(message["score"] * 20)
                rtt = "" if latency_ms is None else f"rtt {latency_ms:5.1f} ms"
                print(
                    f"    stream frame {seq:<5d} scored by v{version}: {message['score']:.3f} "
                    f"[{bar:<20s}] {message['verdict']:<12s} {rtt}",
                    flush=True,
                )
        elif kind == MessageType.MODEL_SWAP:
            self.swaps.append((int(message["from_version"]), int(message["to_version"]), self.results))
            print(
                f"    >>> the stream swapped v{message['from_version']} -> v{message['to_version']}",
                flush=True,
            )
        elif kind == MessageType.ERROR:
            self.errors += 1

    def _shown(self, seq: int) -> bool:
        lively = seq < LIVELY_FRAMES or (
            bool(self.swaps) and self.results - self.swaps[-1][2] <= LIVELY_FRAMES
        )
        return seq % (VIEW_EVERY if lively else QUIET_EVERY) == 0

    def frames_by(self, version: int) -> int:
        return sum(s.frames for s in self.spans if s.version == version)

    def start(self, base: str, token: str, frames: list[np.ndarray]) -> None:
        self.thread = threading.Thread(target=self._play, args=(base, token, frames), daemon=True)
        self.thread.start()

    def finish(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=JOIN_TIMEOUT_S)

    def _play(self, base: str, token: str, frames: list[np.ndarray]) -> None:
        try:
            with Client(base, token=token) as usqa:
                usqa.play(frames, fps=STREAM_FPS, on_message=self.on_message, until=self.stop.is_set)
        except Exception as exc:  # the summary reports it, instead of a traceback from a thread
            self.failure = f"{type(exc).__name__}: {exc}"
