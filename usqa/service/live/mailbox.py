"""The newest frame wins: a one-slot mailbox between a stream's receiver and its scorer.

A scanner sends frames at its own rate; when scoring falls behind, an older frame waiting in the slot is
replaced by the newer one and counted as dropped. At most one frame waits per stream, so a slow moment
never grows into a queue (and feedback never lags further and further behind the probe).
"""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestFrameSlot(Generic[T]):
    """Holds at most one item; `put` replaces and reports a replacement, `get` waits for an item."""

    def __init__(self) -> None:
        self._item: T | None = None
        self._full = False
        self._closed = False
        self._ready = asyncio.Event()

    def put(self, item: T) -> T | None:
        """Store `item`; returns the older item it displaced (a dropped frame), if any."""
        if self._closed:
            raise RuntimeError("the frame slot is closed")
        displaced = self._item if self._full else None
        self._item, self._full = item, True
        self._ready.set()
        return displaced

    def close(self) -> None:
        """No more items; `get` returns what is left, then None."""
        self._closed = True
        self._ready.set()

    @property
    def closed(self) -> bool:
        return self._closed

    async def get(self) -> T | None:
        while not self._full:
            if self._closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        item = self._item
        self._item, self._full = None, False
        return item
