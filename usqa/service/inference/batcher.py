"""The bounded inference queue: worker threads that decode, batch and run requests, off the event loop.

A request (an /assess upload, one stream frame) enters as a job holding its bytes and the model version
it is for. A worker takes the oldest waiting job and, without waiting for more, every following job for the
same model while the batch stays within `max_batch_frames` (dynamic batching with no added delay: a lone
frame runs at once, a crowd shares one graph run). The worker then prepares each job (decodes and resizes
its frames; a job that fails here fails alone) and runs the graphs once for the batch. One thread hop per
request, decode included: the event loop only moves bytes and JSON.

The queue holds at most `max_pending` jobs, waiting or running; past that `submit` refuses with
`QueueFullError` so /assess can answer 429 instead of letting latency grow without bound. Stream frames are
admitted regardless (each stream keeps at most one frame pending, and the number of streams is limited).

On one core (`frames_on_loop`) the event loop runs stream frames itself, batched the same way: a worker there buys
no parallelism, and the two threads take turns, each preempting the other, twice a frame (docs/service.md,
"Inference pipeline"). A frame's job (0.4 to 2 ms) is short beside a frame's time; uploads, maybe cines, keep the
worker.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

import numpy as np

from usqa.service.inference.batch_job import (
    BatchObserver,
    BatchTiming,
    InferenceJob,
    ProbeObserver,
    WorkObserver,
)
from usqa.service.inference.model import LoadedModel, ModelOutputs, concat_outputs

log = logging.getLogger(__name__)

R = TypeVar("R")

MSG_QUEUE_FULL = "the inference queue is full ({pending} requests pending); retry after {retry_after} s"
MSG_STOPPED = "the inference queue is shut down"


class QueueFullError(RuntimeError):
    """Too many requests pending; the client should retry later."""


class QueueStoppedError(RuntimeError):
    """The service is shutting down."""


# At most one warm probe a second over all workers, of a batch of at most PROBE_MAX_FRAMES frames (an upload's
# cine is not decoded again; a smaller batch runs as copies up to that many), up to PROBE_REPEATS runs: in the
# service at 4 x 30 fps (64 px PNG, 2 cores, 6 Dec 2026) a lone frame's runs after it cost 0.90, 0.71, 0.64, 0.59,
# 0.54 and 0.53 ms against 1.06 ms for the frame, levelling off by the sixth. A frame that arrives meanwhile cuts
# the probe short; it reports the runs it made (a large frame's one run is nearly warm already).
PROBE_PERIOD_S = 1.0
# frames_on_loop: passes of the event loop a batch waits while frames still join it.
DRAIN_GATHER_PASSES = 4
PROBE_REPEATS = 6
PROBE_MAX_FRAMES = 4


@dataclass
class _Request:
    model: LoadedModel
    job: InferenceJob[Any]
    future: asyncio.Future[tuple[Any, BatchTiming]]
    loop: asyncio.AbstractEventLoop
    submitted: float = field(default_factory=time.perf_counter)
    started: float = 0.0
    prepare_s: float = 0.0
    frames: np.ndarray | None = None
    on_loop: bool = False  # run by the event loop itself: resolved directly, not through call_soon_threadsafe


class InferenceQueue:
    """Worker threads over one bounded queue of jobs; `submit` is awaited from the event loop."""

    def __init__(
        self,
        *,
        workers: int,
        max_batch_frames: int,
        max_pending: int,
        retry_after_s: int = 1,
        on_batch: BatchObserver | None = None,
        on_work: WorkObserver | None = None,
        on_probe: ProbeObserver | None = None,
        frames_on_loop: bool = False,
    ) -> None:
        self.workers = workers
        self.frames_on_loop = frames_on_loop
        self.max_batch_frames = max_batch_frames
        self.max_pending = max_pending
        self.retry_after_s = retry_after_s
        self._on_batch = on_batch
        self._on_work = on_work
        self._on_probe = on_probe
        self._probed_at = 0.0
        self._waiting: collections.deque[_Request] = collections.deque()
        self._running = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._threads: list[threading.Thread] = []
        # frames_on_loop: stream frames the event loop will run, and its drain's state (touched on the loop only).
        self._loop_waiting: collections.deque[_Request] = collections.deque()
        self._drain_due = False
        self._drain_passes = 0
        self._drain_seen = 0
        self._drain_warm = False

    @property
    def pending(self) -> int:
        """Jobs waiting or running."""
        return len(self._waiting) + len(self._loop_waiting) + self._running

    def start(self) -> None:
        for index in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"usqa-inference-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Finish what is waiting, then end the workers."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=timeout_s)
        self._threads.clear()

    async def submit(
        self, model: LoadedModel, job: InferenceJob[R], *, admit_when_full: bool = False
    ) -> tuple[R, BatchTiming]:
        """Prepare `job`, run it on `model` (batched with its neighbours), finish it; all in a worker."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[Any, BatchTiming]] = loop.create_future()
        request = _Request(model=model, job=job, future=future, loop=loop)
        if self.frames_on_loop and job.fits_loop:
            if self._stopping:
                raise QueueStoppedError(MSG_STOPPED)
            request.on_loop = True
            self._loop_waiting.append(request)
            if not self._drain_due:
                self._drain_due, self._drain_passes, self._drain_seen, self._drain_warm = True, 0, 0, False
                loop.call_soon(self._drain, loop)
            return await future
        with self._cond:
            if self._stopping:
                raise QueueStoppedError(MSG_STOPPED)
            if not admit_when_full and self.pending >= self.max_pending:
                raise QueueFullError(
                    MSG_QUEUE_FULL.format(pending=self.pending, retry_after=self.retry_after_s)
                )
            self._waiting.append(request)
            self._cond.notify()
        return await future

    # -- the event loop's side (frames_on_loop) ------------------------------------------------------------

    def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        """Run the stream frames waiting as one batch, here on the event loop. While frames still join (streams
        whose messages were read in the same pass reach `submit` a pass or two later), wait a pass for them, at
        most DRAIN_GATHER_PASSES: a pass of an idle loop costs microseconds, and a lone frame runs at once."""
        waiting = self._loop_waiting
        if (
            len(waiting) > self._drain_seen
            and self._drain_passes < DRAIN_GATHER_PASSES
            and len(waiting) < self.max_batch_frames
        ):
            self._drain_seen, self._drain_passes = len(waiting), self._drain_passes + 1
            loop.call_soon(self._drain, loop)
            return
        batch = _batch_from(waiting, self.max_batch_frames)
        self._running += len(batch)
        try:
            self._run(batch, self._drain_warm)
        except Exception as exc:  # a fault past the per-job guards: its frames fail, the next batches run
            log.exception("a batch of stream frames failed on the event loop")
            for request in batch:
                _resolve(request, exc)
        finally:
            self._running -= len(batch)
            if waiting:  # frames came while this batch ran: the next batch goes at once, warm
                self._drain_passes, self._drain_seen, self._drain_warm = 0, len(waiting), True
                loop.call_soon(self._drain, loop)
            else:
                self._drain_due = False

    # -- worker side -------------------------------------------------------------------------------------

    def _take_batch(self) -> tuple[list[_Request], bool] | None:
        """The next batch, and whether it was waiting already (the worker went on without a pause)."""
        with self._cond:
            warm = bool(self._waiting)
            while not self._waiting:
                if self._stopping:
                    return None
                self._cond.wait()
            batch = _batch_from(self._waiting, self.max_batch_frames)
            self._running += len(batch)
            return batch, warm

    def _work(self) -> None:
        while (taken := self._take_batch()) is not None:
            batch, warm = taken
            try:
                self._run(batch, warm)
            finally:
                with self._cond:
                    self._running -= len(batch)

    def _run(self, batch: list[_Request], warm: bool = False) -> None:
        began, began_cpu = time.perf_counter(), time.thread_time()
        ready = [request for request in batch if self._prepare(request)]
        if not ready:
            return
        model = ready[0].model
        started = time.perf_counter()
        try:
            arrays = [r.frames for r in ready if r.frames is not None]
            frames = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
            outputs = self._run_chunked(model, frames)
        except Exception as exc:
            log.exception("inference failed on %s version %d", model.name, model.number)
            for request in ready:
                _resolve(request, exc)
            return
        elapsed = time.perf_counter() - started
        if self._on_batch is not None:
            self._on_batch(model, len(frames), elapsed)
        for request, part in _slices(ready, outputs):
            timing = BatchTiming(
                queue_s=request.started - request.submitted,
                prepare_s=request.prepare_s,
                inference_s=elapsed,
                batch_frames=len(frames),
            )
            try:
                result: object = (request.job.finish(model, part), timing)
            except Exception as exc:
                log.exception("post-processing failed on %s version %d", model.name, model.number)
                result = exc
            _resolve(request, result)
        finished = time.perf_counter()
        if self._on_work is not None:
            self._on_work(len(frames), finished - began, time.thread_time() - began_cpu, warm)
        if (
            not warm
            and self._on_probe is not None
            and len(frames) <= PROBE_MAX_FRAMES
            and finished - self._probed_at >= PROBE_PERIOD_S
        ):
            self._probed_at = finished
            # At saturation a batch holds several frames (one from each stream): the probe runs as many copies of
            # this one as make up to PROBE_MAX_FRAMES, so that it also sees what batching saves a frame.
            copies = max(1, PROBE_MAX_FRAMES // len(frames))
            tiled = frames if copies == 1 else np.concatenate([frames] * copies)
            if ready[0].on_loop:
                self._probe_on_loop(partial(_probe_steps, model, ready * copies, tiled), len(tiled))
            else:
                self._probe(model, ready * copies, tiled)

    def _probe(self, model: LoadedModel, ready: list[_Request], frames: np.ndarray) -> None:
        """What this batch costs when others come before it at once, as at saturation: its decoding, graphs and
        verdicts again, up to PROBE_REPEATS times back to back, results discarded; the warmest run is reported. Only after
        a batch that found the worker idle, and only while nothing waits: a frame that arrives meanwhile waits at
        most one run of this batch's work, and the probe reports the runs it made."""
        warmest, runs, spent = math.inf, 0, 0.0
        for _ in range(PROBE_REPEATS):
            with self._cond:
                if self._waiting:
                    break
            began = time.thread_time()
            try:
                collections.deque(_probe_steps(model, ready, frames), maxlen=0)  # every step, at once
            except Exception:  # a probe never fails anyone; the batch itself was answered
                log.debug("capacity probe failed", exc_info=True)
                return
            run = time.thread_time() - began
            warmest, runs, spent = min(warmest, run), runs + 1, spent + run
        self._report_probe(len(frames), warmest, runs, spent)

    def _probe_on_loop(
        self,
        run: Callable[[], Iterator[None]],
        frames: int,
        steps: Iterator[None] | None = None,
        run_s: float = 0.0,
        warmest: float = math.inf,
        runs: int = 0,
        spent: float = 0.0,
    ) -> None:
        """The probe on the event loop, a step (one frame's decoding, the graphs, the verdicts) per pass of the loop:
        a frame that arrives waits at most a step, and stops the probe. The runs' CPU is summed over their steps."""
        if self._loop_waiting:
            self._report_probe(frames, warmest, runs, spent)
            return
        steps = steps or run()
        began = time.thread_time()
        try:
            next(steps)
            done = False
        except StopIteration:
            done = True
        except Exception:  # a probe never fails anyone; the batch itself was answered
            log.debug("capacity probe failed", exc_info=True)
            return
        took = time.thread_time() - began
        run_s, spent = run_s + took, spent + took
        if done:
            warmest, runs, run_s, steps = min(warmest, run_s), runs + 1, 0.0, None
            if runs >= PROBE_REPEATS:
                self._report_probe(frames, warmest, runs, spent)
                return
        asyncio.get_running_loop().call_soon(
            self._probe_on_loop, run, frames, steps, run_s, warmest, runs, spent
        )

    def _report_probe(self, frames: int, warmest: float, runs: int, spent: float) -> None:
        if runs and self._on_probe is not None:
            self._on_probe(frames, warmest, spent)

    @staticmethod
    def _prepare(request: _Request) -> bool:
        request.started = time.perf_counter()
        try:
            request.frames = request.job.prepare()
        except Exception as exc:  # bad input (or a bug) fails this request alone; the batch goes on
            _resolve(request, exc)
            return False
        request.prepare_s = time.perf_counter() - request.started
        return True

    def _run_chunked(self, model: LoadedModel, frames: np.ndarray) -> ModelOutputs:
        # A long cine runs in slices of max_batch_frames: bounded memory per run, same results.
        step = self.max_batch_frames
        if len(frames) <= step:
            return model.run(frames)
        return concat_outputs([model.run(frames[i : i + step]) for i in range(0, len(frames), step)])


def _probe_steps(model: LoadedModel, ready: list[_Request], frames: np.ndarray) -> Iterator[None]:
    """One run of the probe over `ready`'s jobs and their `frames`, a step at a time: each job's decoding, the
    graphs, then the verdicts."""
    for request in ready:
        request.job.decode_again()
        yield
    outputs = model.run(frames)
    yield
    for request, part in _slices(ready, outputs):
        request.job.finish_again(model, part)


def _slices(ready: list[_Request], outputs: ModelOutputs) -> Iterator[tuple[_Request, ModelOutputs]]:
    """Each request of a batch with its frames' part of the batch's outputs, in order."""
    offset = 0
    for request in ready:
        count = len(request.frames) if request.frames is not None else 0
        yield request, outputs.take(offset, offset + count)
        offset += count


def _batch_from(waiting: collections.deque[_Request], max_frames: int) -> list[_Request]:
    """The oldest waiting request and every following one for the same model while the frames stay within
    `max_frames`, taken off `waiting` (which holds at least one)."""
    first = waiting.popleft()
    batch = [first]
    frames = first.job.frame_hint
    while waiting and waiting[0].model is first.model and frames + waiting[0].job.frame_hint <= max_frames:
        request = waiting.popleft()
        batch.append(request)
        frames += request.job.frame_hint
    return batch


def _resolve(request: _Request, result: object) -> None:
    def apply() -> None:
        if request.future.done():  # the client went away and the awaiting task was cancelled
            return
        if isinstance(result, BaseException):
            request.future.set_exception(result)
        else:
            request.future.set_result(result)  # type: ignore[arg-type]

    if request.on_loop:  # on the event loop's thread already
        apply()
        return
    with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
        request.loop.call_soon_threadsafe(apply)
