"""The decode lane keeps nothing of a request once it is answered (issue 28, item 12): multiprocessing.Queue's
feeder thread held the last pickled job, so an upload's whole body stayed resident after its request."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from functools import partial

from usqa.service.frames.lane import DecodeLane

BODY_BYTES = 8 * 1024 * 1024


def _large_buffers_held_by_threads(smallest: int) -> list[str]:
    """Buffers of at least `smallest` bytes referenced from any thread's frames: where and how large."""
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    found = []
    for ident, frame in sys._current_frames().items():
        while frame is not None:
            for name, value in frame.f_locals.items():
                if isinstance(value, bytes | bytearray | memoryview) and len(value) >= smallest:
                    found.append(f"{names.get(ident)} {frame.f_code.co_name} {name}: {len(value)} bytes")
            frame = frame.f_back
    return found


def test_a_process_lane_keeps_no_copy_of_a_finished_jobs_body() -> None:
    lane = DecodeLane(workers=1, max_waiting=0, processes=True)
    try:
        assert asyncio.run(lane.run(partial(len, bytes(BODY_BYTES)))) == BODY_BYTES
        deadline = time.monotonic() + 5
        while held := _large_buffers_held_by_threads(BODY_BYTES):  # the no-op behind it is fed a moment later
            assert time.monotonic() < deadline, held
            time.sleep(0.02)
    finally:
        lane.close()
