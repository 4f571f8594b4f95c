"""The event loop running stream frames itself (`frames_on_loop`, the service on one core): batched as the
workers batch them, answered on the loop's thread, uploads still in the worker, the probe in the worker."""

from __future__ import annotations

import asyncio
import threading

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

    try:
        asyncio.run(scenario())
    finally:
        queue.stop()
    # Batches within max_batch_frames; the ones after the first went on without the loop idling: warm.
    assert fake.calls == [4, 4, 2] and work == [(4, False), (4, True), (2, True)]


def test_an_upload_keeps_the_worker_thread() -> None:
    fake = FakeModel()
    queue = loop_queue()

    async def scenario() -> None:
        found, _ = await queue.submit(as_model(fake), ArrayJob(frames(5, 6), scores))
        assert found == [5.0, 6.0]
        assert fake.threads and threading.get_ident() not in fake.threads

    try:
        asyncio.run(scenario())
    finally:
        queue.stop()


def test_a_failed_batch_fails_its_frames_and_the_loop_goes_on() -> None:
    broken, healthy = FakeModel(fail=True), FakeModel()
    queue = loop_queue()

    async def scenario() -> None:
        with pytest.raises(RuntimeError, match="graph failed"):
            await queue.submit(as_model(broken), StreamFrame(frames(1), scores))
        found, _ = await queue.submit(as_model(healthy), StreamFrame(frames(7), scores))
        assert found == [7.0]

    try:
        asyncio.run(scenario())
    finally:
        queue.stop()


def test_the_probe_of_a_batch_the_loop_ran_runs_in_the_worker() -> None:
    fake = FakeModel()
    probes: list[tuple[int, int]] = []
    probed = threading.Event()

    def noted(count: int, seconds: float) -> None:
        probes.append((count, threading.get_ident()))
        probed.set()

    queue = loop_queue(on_probe=noted)

    async def scenario() -> int:
        await queue.submit(as_model(fake), StreamFrame(frames(3), scores))
        assert await asyncio.to_thread(probed.wait, 5.0)
        return threading.get_ident()

    try:
        loop_thread = asyncio.run(scenario())
    finally:
        queue.stop()
    assert fake.calls == [1] + [PROBE_MAX_FRAMES] * PROBE_REPEATS
    assert fake.threads[0] == loop_thread and loop_thread not in fake.threads[1:]
    assert len(probes) == 1 and probes[0][0] == PROBE_MAX_FRAMES and probes[0][1] != loop_thread


def test_a_stopped_queue_refuses_stream_frames() -> None:
    queue = loop_queue()
    queue.stop()
    with pytest.raises(QueueStoppedError):
        asyncio.run(queue.submit(as_model(FakeModel()), StreamFrame(frames(1), scores)))
