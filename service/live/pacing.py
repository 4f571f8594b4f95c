"""Client-side pacing for /ws/scan: send frames no faster than the service answers them.

The server keeps one frame waiting per stream and replaces it with each newer one (counted in `dropped`).
A client that has at most `window` frames unanswered never outruns it: with two, the server scores one
while the next waits, so it is never idle and nothing is replaced. Results arrive in order, so an answer
for frame n settles every earlier frame (one the server replaced is never answered). When a result shows
`dropped` growing anyway (another client's frames slowed the shared workers), the window shrinks to one.
"""

from __future__ import annotations

from typing import Any

DEFAULT_WINDOW = 2


class ScanPacer:
    """Counts a stream's unanswered frames; `may_send` before each frame, `on_message` for each answer."""

    def __init__(self, window: int = DEFAULT_WINDOW) -> None:
        if window < 1:
            raise ValueError("the window must be at least one frame")
        self.window = window
        self.sent = 0
        self.answered = -1  # highest seq with a result or an error
        self.dropped = 0

    @property
    def in_flight(self) -> int:
        return self.sent - 1 - self.answered

    def may_send(self) -> bool:
        return self.in_flight < self.window

    def on_sent(self) -> int:
        """Count a frame as sent; its seq (the server numbers binary messages the same way)."""
        seq = self.sent
        self.sent += 1
        return seq

    def on_message(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        seq = message.get("seq")
        if kind in ("result", "error") and isinstance(seq, int):
            self.answered = max(self.answered, seq)
        if kind == "result" and int(message.get("dropped", 0)) > self.dropped:
            self.dropped = int(message["dropped"])
            self.window = 1
