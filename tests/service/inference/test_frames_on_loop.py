"""The event loop running stream frames itself (`frames_on_loop`, the service on one core): batched as the
workers batch them, answered on the loop's thread, uploads still in the worker, the probe on the loop a step at a time."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from tests.support.queue_fakes import FakeModel, as_model, frames, scores
from usqa.service.inference.batch_job import ArrayJob
from usqa.service.inference.batcher import PROBE_MAX_FRAMES, PROBE_REPEATS, InferenceQueue, QueueStoppedError


class StreamFrame(ArrayJob[list[float]]):
    fits_loop = True


def loop_queue(**observers: object) -> InferenceQueue:
    queue = InferenceQueue(
        workers=1,
        max_batch_frames=4,
        max_pending=16,
        frames_on_loop=True,
        **observers,  # type: ignore[arg-type]
    )
    queue.start()
    return queue


def run_then_stop(queue: InferenceQueue, scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    try:
        asyncio.run(scenario())
    finally:
        queue.stop()


def test_stream_frames_of_one_pass_run_together_on_the_event_loop() -> None:
    fake = FakeModel()
    work: list[tuple[int, bool]] = []
    queue = loop_queue(on_work=lambda n, s, cpu, warm: work.append((n, warm)))

    async def scenario() -> None:
        levels = range(1, 11)
        answers = await asyncio.gather(
            *(queue.submit(as_model(fake), StreamFrame(frames(level), scores)) for level in levels)
        )
        assert [found for found, _ in answers] == [[float(level)] for level in levels]
        assert [timing.batch_frames for _, timing in answers] == [4] * 8 + [2] * 2
        assert set(fake.threads) == {threading.get_ident()}  # this thread runs the loop: no worker ran them

    run_then_stop(queue, scenario)
    # Batches within max_batch_frames; the ones after the first went on without the loop idling: warm.
    assert fake.calls == [4, 4, 2] and work == [(4, False), (4, True), (2, True)]


def test_an_upload_keeps_the_worker_thread() -> None:
    fake = FakeModel()
    queue = loop_queue()

    async def scenario() -> None:
        found, _ = await queue.submit(as_model(fake), ArrayJob(frames(5, 6), scores))
        assert found == [5.0, 6.0]
        assert fake.threads and threading.get_ident() not in fake.threads

    run_then_stop(queue, scenario)


def test_a_failed_batch_fails_its_frames_and_the_loop_goes_on() -> None:
    broken, healthy = FakeModel(fail=True), FakeModel()
    queue = loop_queue()

    async def scenario() -> None:
        with pytest.raises(RuntimeError, match="graph failed"):
            await queue.submit(as_model(broken), StreamFrame(frames(1), scores))
        found, _ = await queue.submit(as_model(healthy), StreamFrame(frames(7), scores))
        assert found == [7.0]

    run_then_stop(queue, scenario)


def test_the_probe_of_a_batch_the_loop_ran_runs_on_the_loop_a_step_a_pass() -> None:
    fake = FakeModel()
    probes: list[tuple[int, float, float]] = []
    queue = loop_queue(on_probe=lambda n, warmest, spent: probes.append((n, warmest, spent)))

    async def scenario() -> None:
        await queue.submit(as_model(fake), StreamFrame(frames(3), scores))
        for _ in range(1000):  # the probe's steps, one a pass of the loop
            if probes:
                break
            await asyncio.sleep(0)

    run_then_stop(queue, scenario)
    # The lone frame, then PROBE_REPEATS runs of four copies of it, every one on the loop's thread.
    assert fake.calls == [1] + [PROBE_MAX_FRAMES] * PROBE_REPEATS
    assert set(fake.threads) == {threading.get_ident()}
    ((count, warmest, spent),) = probes
    assert count == PROBE_MAX_FRAMES and warmest > 0 and warmest * PROBE_REPEATS <= spent


def test_a_frame_arriving_during_a_loop_probe_waits_a_step_and_stops_it() -> None:
    fake = FakeModel()
    probes: list[int] = []
    queue = loop_queue(on_probe=lambda n, warmest, spent: probes.append(n))

    async def scenario() -> None:
        await queue.submit(as_model(fake), StreamFrame(frames(3), scores))
        while len(fake.calls) < 2:  # the probe's first graph run (after four decoding steps)
            await asyncio.sleep(0)
        found, _ = await queue.submit(as_model(fake), StreamFrame(frames(9), scores))
        assert found == [9.0]

    run_then_stop(queue, scenario)
    # The frame ran after the step in progress, and no graph of the probe ran again (its verdicts' step may
    # have finished the run it was in, which is then reported).
    assert fake.calls == [1, PROBE_MAX_FRAMES, 1] and probes in ([], [PROBE_MAX_FRAMES])


def test_a_stopped_queue_refuses_stream_frames() -> None:
    queue = loop_queue()
    queue.stop()
    with pytest.raises(QueueStoppedError):
        asyncio.run(queue.submit(as_model(FakeModel()), StreamFrame(frames(1), scores)))


def test_a_fault_past_the_jobs_guards_fails_its_batch_and_the_next_batches_run() -> None:
    faults = [RuntimeError("observer broke")]

    def observer(model: object, frames: int, seconds: float) -> None:
        if faults:
            raise faults.pop()

    queue = loop_queue(on_batch=observer)
    fake = FakeModel()

    async def scenario() -> None:
        with pytest.raises(RuntimeError, match="observer broke"):
            await queue.submit(as_model(fake), StreamFrame(frames(1), scores))
        found, _ = await queue.submit(as_model(fake), StreamFrame(frames(2), scores))
        assert found == [2.0]

    run_then_stop(queue, scenario)
