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
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np

from usqa.service.inference.model import LoadedModel, ModelOutputs, concat_outputs

log = logging.getLogger(__name__)

R = TypeVar("R")

MSG_QUEUE_FULL = "the inference queue is full ({pending} requests pending); retry after {retry_after} s"
MSG_STOPPED = "the inference queue is shut down"


class QueueFullError(RuntimeError):
    """Too many requests pending; the client should retry later."""


class QueueStoppedError(RuntimeError):
    """The service is shutting down."""


class InferenceJob(ABC, Generic[R]):
    """One request's work around the shared graph run; both methods run in a worker thread."""

    # Frames this job will bring, for batching decisions before it is prepared (a cine may bring more).
    frame_hint: int = 1

    @abstractmethod
    def prepare(self) -> np.ndarray:
        """The model input frames, uint8 [N, S, S]; raising here fails this job only."""

    @abstractmethod
    def finish(self, model: LoadedModel, outputs: ModelOutputs) -> R:
        """The job's result from its slice of the batch outputs."""

    def decode_again(self) -> None:
        """Repeat `prepare`'s decoding and discard it (the capacity probe times it); nothing to repeat here."""

    def finish_again(self, model: LoadedModel, outputs: ModelOutputs) -> None:
        """Repeat `finish`'s work and discard it (the capacity probe times it); here nothing, as `finish` may
        have effects beyond its result."""


class ArrayJob(InferenceJob[R]):
    """Frames already prepared, and what to make of their outputs."""

    def __init__(self, frames: np.ndarray, finish: Callable[[LoadedModel, ModelOutputs], R]) -> None:
        self.frames = frames
        self.frame_hint = len(frames)
        self._finish = finish

    def prepare(self) -> np.ndarray:
        return self.frames

    def finish(self, model: LoadedModel, outputs: ModelOutputs) -> R:
        return self._finish(model, outputs)


@dataclass(frozen=True)
class BatchTiming:
    queue_s: float  # submitted -> a worker started on it
    prepare_s: float  # its own decoding and preparation
    inference_s: float  # the graph run of the batch it was in
    batch_frames: int


BatchObserver = Callable[[LoadedModel, int, float], None]
# (frames, seconds, cpu_seconds, warm): a batch's whole worker time, preparation to verdicts (the capacity meter's
# W), the worker thread's CPU time in it, and whether its worker took it without waiting (it had just finished
# another: warm caches, no wake-up).
WorkObserver = Callable[[int, float, float, bool], None]
# (frames, cpu_seconds): a batch's decoding, graphs and verdicts run again straight after it, results discarded,
# the CPU time of the warmest repetition; CPU time, because on a shared core the event loop answering the batch runs
# meanwhile.
ProbeObserver = Callable[[int, float], None]
# At most one warm probe a second over all workers, of a batch of at most PROBE_MAX_FRAMES frames (an upload's
# cine is not decoded again), up to PROBE_REPEATS runs. In the service at 4 x 30 fps (64 px PNG frames, 2 cores,
# 6 Dec 2026) a lone frame's decoding and graphs cost 1.06 ms of CPU, the probe's runs after it 0.90, 0.71, 0.64,
# 0.59, 0.54 and 0.53 ms, and a frame at saturation 0.41 ms (batches of 2): the runs level off by the sixth,
# still above saturation. A frame that arrives meanwhile cuts the probe short; it reports the runs it made (one
# run of a large frame, whose cold share is small, is nearly warm already). About 3 % of the work at 4 x 30 fps.
PROBE_PERIOD_S = 1.0
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
    ) -> None:
        self.workers = workers
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

    @property
    def pending(self) -> int:
        """Jobs waiting or running."""
        return len(self._waiting) + self._running

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

    # -- worker side -------------------------------------------------------------------------------------

    def _take_batch(self) -> tuple[list[_Request], bool] | None:
        """The next batch, and whether it was waiting already (the worker went on without a pause)."""
        with self._cond:
            warm = bool(self._waiting)
            while not self._waiting:
                if self._stopping:
                    return None
                self._cond.wait()
            first = self._waiting.popleft()
            batch = [first]
            frames = first.job.frame_hint
            while (
                self._waiting
                and self._waiting[0].model is first.model
                and frames + self._waiting[0].job.frame_hint <= self.max_batch_frames
            ):
                request = self._waiting.popleft()
                batch.append(request)
                frames += request.job.frame_hint
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
        offset = 0
        for request in ready:
            count = len(request.frames) if request.frames is not None else 0
            timing = BatchTiming(
                queue_s=request.started - request.submitted,
                prepare_s=request.prepare_s,
                inference_s=elapsed,
                batch_frames=len(frames),
            )
            try:
                result: object = (request.job.finish(model, outputs.take(offset, offset + count)), timing)
            except Exception as exc:
                log.exception("post-processing failed on %s version %d", model.name, model.number)
                result = exc
            _resolve(request, result)
            offset += count
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
            self._probe(model, ready, frames)

    def _probe(self, model: LoadedModel, ready: list[_Request], frames: np.ndarray) -> None:
        """What this batch costs when others come before it at once, as at saturation: its decoding, graphs and
        verdicts again, up to PROBE_REPEATS times back to back, results discarded; the warmest run is reported. Only after
        a batch that found the worker idle, and only while nothing waits: a frame that arrives meanwhile waits at
        most one run of this batch's work, and the probe reports the runs it made."""
        warmest, runs = math.inf, 0
        for _ in range(PROBE_REPEATS):
            with self._cond:
                if self._waiting:
                    break
            began = time.thread_time()
            try:
                for request in ready:
                    request.job.decode_again()
                outputs = model.run(frames)
                offset = 0
                for request in ready:
                    count = len(request.frames) if request.frames is not None else 0
                    request.job.finish_again(model, outputs.take(offset, offset + count))
                    offset += count
            except Exception:  # a probe never fails anyone; the batch itself was answered
                log.debug("capacity probe failed", exc_info=True)
                return
            warmest = min(warmest, time.thread_time() - began)
            runs += 1
        if runs:
            assert self._on_probe is not None
            self._on_probe(len(frames), warmest)

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


def _resolve(request: _Request, result: object) -> None:
    def apply() -> None:
        if request.future.done():  # the client went away and the awaiting task was cancelled
            return
        if isinstance(result, BaseException):
            request.future.set_exception(result)
        else:
            request.future.set_result(result)  # type: ignore[arg-type]

    with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
        request.loop.call_soon_threadsafe(apply)
