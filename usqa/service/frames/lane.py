"""The decode lane: whole-file decodes (an /assess upload, a /cine/frames cine) run here, never on the
inference workers that stream frames wait for.

A small thread pool of its own with a bounded wait: at most `workers` decodes run and `max_waiting` more wait;
past that `run` refuses with DecodeLaneFullError (the API answers 429 with Retry-After) instead of queueing
without end. Stream frames (one small frame per message) keep decoding in the inference workers, so an
upload never queues in front of them; with the per-file time limit (`max_decode_s` in the decoders) a
hostile file holds one lane thread for seconds at most.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

MSG_LANE_FULL = (
    "the decode lane is full ({busy} file decodes running or waiting); retry after {retry_after} s"
)


class DecodeLaneFullError(RuntimeError):
    """Too many file decodes running or waiting; the client should retry later."""


class DecodeLane:
    def __init__(self, workers: int, max_waiting: int, retry_after_s: int = 1) -> None:
        self.limit = workers + max_waiting
        self.retry_after_s = retry_after_s
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="usqa-decode")
        self._lock = threading.Lock()
        self._busy = 0

    @property
    def busy(self) -> int:
        return self._busy

    async def run(self, work: Callable[[], T]) -> T:
        """`work()` in the lane's threads; DecodeLaneFullError at once when the lane is full."""
        with self._lock:
            if self._busy >= self.limit:
                raise DecodeLaneFullError(
                    MSG_LANE_FULL.format(busy=self._busy, retry_after=self.retry_after_s)
                )
            self._busy += 1
        future = self._executor.submit(work)
        future.add_done_callback(self._release)
        # A cancelled request (the client went away) does not stop its decode; the slot frees when it ends.
        return await asyncio.wrap_future(future)

    def _release(self, _: object) -> None:
        with self._lock:
            self._busy -= 1

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
