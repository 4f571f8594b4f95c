"""The decode lane: whole-file decodes (a DICOM on /assess, a /cine/frames cine) run here, never on the
inference workers that stream frames wait for.

A small pool of its own with a bounded wait: at most `workers` decodes run and `max_waiting` more wait; past
that `run` refuses with DecodeLaneFullError (the API answers 429 with Retry-After) instead of queueing without
end. By default the pool is of processes: codecs such as OpenJPEG hold the GIL for the whole of a frame
(0.2-0.4 s for 4096x4096), so a decode thread would still stall the event loop and the stream frames beside
it. Stream frames (one small frame per message) keep decoding in the inference workers, so an upload never
queues in front of them; with the per-file time limit (`max_decode_s` in the decoders) a hostile file holds
the lane for seconds at most. The process starts with the first decode (spawned, not forked from a process
that runs threads); `work` must then pickle (a module-level function and plain arguments).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import threading
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from usqa.service.frames.errors import DECODER_CRASHED, CorruptFrameError
from usqa.service.heap import trim_heap

T = TypeVar("T")

MSG_LANE_FULL = (
    "the decode lane is full ({busy} file decodes running or waiting); retry after {retry_after} s"
)


class DecodeLaneFullError(RuntimeError):
    """Too many file decodes running or waiting; the client should retry later."""


class DecodeLane:
    def __init__(
        self, workers: int, max_waiting: int, retry_after_s: int = 1, *, processes: bool = True
    ) -> None:
        self.limit = workers + max_waiting
        self.retry_after_s = retry_after_s
        self.workers = workers
        self.processes = processes
        self._executor = self._new_executor()
        self._lock = threading.Lock()
        self._busy = 0

    @property
    def busy(self) -> int:
        return self._busy

    async def run(self, work: Callable[[], T]) -> T:
        """`work()` in the lane; DecodeLaneFullError at once when the lane is full."""
        with self._lock:
            if self._busy >= self.limit:
                raise DecodeLaneFullError(
                    MSG_LANE_FULL.format(busy=self._busy, retry_after=self.retry_after_s)
                )
            self._busy += 1
        try:
            future = self._executor.submit(_trimmed, work)
        except BaseException:
            self._release(None)
            raise
        future.add_done_callback(self._release)
        if self.processes:
            # multiprocessing.Queue's feeder thread keeps the last item it pickled referenced until it pickles
            # the next (CPython's Queue._feed), so an upload's whole body stayed resident after its request (50
            # MB after a 48 MB DICOM, up to USQA_MAX_BODY_BYTES): a no-op behind each decode takes its place.
            with contextlib.suppress(RuntimeError):  # a broken or closed pool: the decode's own error says so
                self._executor.submit(_nothing)
        # A cancelled request (the client went away) does not stop its decode; the slot frees when it ends.
        try:
            return await asyncio.wrap_future(future)
        except (
            BrokenProcessPool
        ) as exc:  # a codec crashed its process: that input is refused, the lane goes on
            self._restart(broken=self._executor)
            raise CorruptFrameError(DECODER_CRASHED) from exc

    def _new_executor(self) -> Executor:
        if self.processes:
            return ProcessPoolExecutor(
                max_workers=self.workers, mp_context=multiprocessing.get_context("spawn")
            )
        return ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="usqa-decode")

    def _restart(self, broken: Executor) -> None:
        with self._lock:
            if self._executor is broken:
                self._executor = self._new_executor()
        broken.shutdown(wait=False, cancel_futures=True)

    def _release(self, _: object) -> None:
        with self._lock:
            self._busy -= 1

    def close(self) -> None:
        """Stop the lane; a process lane's workers are ended and joined here, so none outlives the service."""
        executor = self._executor
        if not isinstance(executor, ProcessPoolExecutor):
            executor.shutdown(wait=False, cancel_futures=True)
            return
        # shutdown(wait=False) leaves the workers to the pool's own thread, which the interpreter's exit can cut
        # short: `usqa serve` then exited with its lane process (and multiprocessing's resource tracker) left
        # behind, orphaned, in about one stop in two after large uploads. A decode still running is abandoned.
        for process in list((getattr(executor, "_processes", None) or {}).values()):
            process.terminate()
        executor.shutdown(wait=True, cancel_futures=True)


def _trimmed(work: Callable[[], T]) -> T:
    """`work()`, then the freed heap handed back to the system (glibc keeps a thread's arena otherwise: a
    decode of the whole budget would leave ~80 MB resident for good)."""
    try:
        return work()
    finally:
        trim_heap()


def _nothing() -> None:
    """The lane's no-op (see `DecodeLane.run`)."""
