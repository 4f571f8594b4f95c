"""Client-side pacing for /ws/scan: send frames no faster than the service answers them.

The server keeps one frame waiting per stream and replaces it with each newer one (counted in `dropped`).
A client with at most `window` frames unanswered never builds a backlog there. One (the default) never
loses a frame: the next is sent when the last is answered. Two keep the server busy over a slow network,
but a frame can be replaced when the second arrives before the server's scorer took the first; when a
result shows `dropped` growing, the window shrinks to one. Results arrive in order, so an answer for frame
n settles every earlier frame (one the server replaced is never answered).
"""

from __future__ import annotations

from typing import Any

from usqa.contracts.protocol import MessageType

DEFAULT_WINDOW = 1
RESULT, ERROR = MessageType.RESULT, MessageType.ERROR  # bound once: this runs for every answer


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
        if kind in (RESULT, ERROR) and isinstance(seq, int) and seq > self.answered:
            self.answered = seq
        if kind == RESULT and int(message.get("dropped", 0)) > self.dropped:
            self.dropped = int(message["dropped"])
            self.window = 1
