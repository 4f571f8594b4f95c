from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from tests.support.queue_fakes import WAIT_S, FakeModel, as_model, frames, scores
from usqa.service.inference.batch_job import ArrayJob, InferenceJob
from usqa.service.inference.batcher import (
    MSG_QUEUE_FULL,
    PROBE_MAX_FRAMES,
    PROBE_REPEATS,
    InferenceQueue,
    QueueFullError,
    QueueStoppedError,
)
from usqa.service.inference.model import LoadedModel, ModelOutputs


def make_queue(**kwargs: int) -> InferenceQueue:
    options = {"workers": 1, "max_batch_frames": 8, "max_pending": 16} | kwargs
    queue = InferenceQueue(**options)
    queue.start()
    return queue


async def _wait(event: threading.Event) -> None:
    assert await asyncio.get_running_loop().run_in_executor(None, event.wait, WAIT_S)


def test_requests_waiting_together_run_as_one_batch() -> None:
    fake = FakeModel(hold_first=True)
    work: list[tuple[int, bool]] = []
    queue = InferenceQueue(
        workers=1,
        max_batch_frames=8,
        max_pending=16,
        on_work=lambda n, _s, _cpu, warm: work.append((n, warm)),
    )
    queue.start()

    async def scenario() -> None:
        first = asyncio.create_task(queue.submit(as_model(fake), ArrayJob(frames(1), scores)))
        await _wait(fake.entered)
        rest = [
            asyncio.create_task(queue.submit(as_model(fake), ArrayJob(frames(level), scores)))
            for level in (2, 3, 4)
        ]
        await asyncio.sleep(0.05)
        assert queue.pending == 4
        fake.gate.set()
        (first_scores, first_timing), *others = await asyncio.gather(first, *rest)
        assert first_scores == [1.0] and first_timing.batch_frames == 1
        assert [s for s, _ in others] == [[2.0], [3.0], [4.0]]
        assert {t.batch_frames for _, t in others} == {3}
        assert all(t.queue_s > 0 for _, t in others)

    try:
        asyncio.run(scenario())
    finally:
        queue.stop()
    assert fake.calls == [1, 3]
    assert queue.pending == 0
    # The first batch woke an idle worker; the second was waiting when it finished (the capacity meter's warm).
    assert work == [(1, False), (3, True)]


def test_requests_for_different_models_never_share_a_batch() -> None:
    old, new = FakeModel("old", hold_first=True), FakeModel("new")
    queue = make_queue()

    async def scenario() -> None:
        blocker = asyncio.create_task(queue.submit(as_model(old), ArrayJob(frames(1), scores)))
        await _wait(old.entered)
        mixed = [
            asyncio.create_task(queue.submit(as_model(model), ArrayJob(frames(9), scores)))
            for model in (old, new, new)
        ]
        await asyncio.sleep(0.05)
        old.gate.set()
        await asyncio.gather(blocker, *mixed)

    try:
        asyncio.run(scenario())
    finally:
        queue.stop()
    assert old.calls == [1, 1] and new.calls == [2]


def test_a_long_cine_runs_in_slices_of_the_batch_limit() -> None:
    fake = FakeModel()
    queue = make_queue(max_batch_frames=4)
    try:
        result, timing = asyncio.run(queue.submit(as_model(fake), ArrayJob(frames(*range(10)), scores)))
    finally:
        queue.stop()
    assert result == [float(i) for i in range(10)]
    assert fake.calls == [4, 4, 2] and timing.batch_frames == 10


def test_a_full_queue_refuses_uploads_but_admits_stream_frames() -> None:
    fake = FakeModel(hold_first=True)
    queue = make_queue(max_pending=1)

    async def scenario() -> None:
        running = asyncio.create_task(queue.submit(as_model(fake), ArrayJob(frames(1), scores)))
        await _wait(fake.entered)
        with pytest.raises(QueueFullError) as info:
            await queue.submit(as_model(fake), ArrayJob(frames(2), scores))
        assert str(info.value) == MSG_QUEUE_FULL.format(pending=1, retry_after=1)
        stream_frame = asyncio.create_task(
            queue.submit(as_model(fake), ArrayJob(frames(3), scores), admit_when_full=True)
        )
        await asyncio.sleep(0.02)
        fake.gate.set()
        assert (await stream_frame)[0] == [3.0]
        await running

    try:
        asyncio.run(scenario())
    finally:
        queue.stop()


def test_a_failing_run_fails_its_requests_and_the_worker_goes_on() -> None:
    broken, healthy = FakeModel(fail=True), FakeModel()
    queue = make_queue()

    async def scenario() -> None:
        with pytest.raises(RuntimeError, match="graph failed"):
            await queue.submit(as_model(broken), ArrayJob(frames(1), scores))
        assert (await queue.submit(as_model(healthy), ArrayJob(frames(5), scores)))[0] == [5.0]

    try:
        asyncio.run(scenario())
    finally:
        queue.stop()


def test_a_stopped_queue_refuses_new_requests() -> None:
    queue = make_queue()
    queue.stop()
    with pytest.raises(QueueStoppedError):
        asyncio.run(queue.submit(as_model(FakeModel()), ArrayJob(frames(1), scores)))


class BrokenUpload(InferenceJob[list[float]]):
    def prepare(self) -> np.ndarray:
        raise ValueError("not an image")

    def finish(self, model: LoadedModel, outputs: ModelOutputs) -> list[float]:
        raise AssertionError("never reached")


def test_a_job_that_cannot_be_prepared_fails_alone() -> None:
    fake = FakeModel(hold_first=True)
    queue = make_queue()

    async def scenario() -> None:
        blocker = asyncio.create_task(queue.submit(as_model(fake), ArrayJob(frames(1), scores)))
        await _wait(fake.entered)
        broken = asyncio.create_task(queue.submit(as_model(fake), BrokenUpload()))
        healthy = asyncio.create_task(queue.submit(as_model(fake), ArrayJob(frames(6), scores)))
        await asyncio.sleep(0.05)
        fake.gate.set()
        with pytest.raises(ValueError, match="not an image"):
            await broken
        result, timing = await healthy
        assert result == [6.0] and timing.batch_frames == 1 and timing.prepare_s >= 0
        await blocker

    try:
        asyncio.run(scenario())
    finally:
        queue.stop()
    assert fake.calls == [1, 1]


def probed_queue(probes: list[int]) -> InferenceQueue:
    """One worker whose capacity probes note their frames in `probes`, started."""
    queue = InferenceQueue(
        workers=1, max_batch_frames=8, max_pending=16, on_probe=lambda n, seconds, spent: probes.append(n)
    )
    queue.start()
    return queue


def test_a_batch_that_found_the_worker_idle_is_probed_warm_once_a_second() -> None:
    fake = FakeModel()
    probes: list[int] = []
    queue = probed_queue(probes)
    probe_runs = [4] * PROBE_REPEATS  # the batch of two, twice: a saturated batch's size

    async def scenario() -> None:
        for level in (1, 2):  # two lone frames within a second: only the first is probed
            found, _ = await queue.submit(as_model(fake), ArrayJob(frames(level, level), scores))
            assert found == [float(level)] * 2  # the probe's outputs are discarded, never answered
            for _ in range(100):  # the probe runs after the answer: let it finish before the next frame
                if len(fake.calls) >= 1 + PROBE_REPEATS:
                    break
                await asyncio.sleep(0.01)

    try:
        asyncio.run(scenario())
    finally:
        queue.stop()
    assert probes == [4] and fake.calls == [2, *probe_runs, 2]  # the first batch, its probe, the second batch
    too_many = FakeModel()
    queue = probed_queue(probes)
    try:  # an upload's many frames are not decoded again for a probe
        asyncio.run(queue.submit(as_model(too_many), ArrayJob(frames(*range(PROBE_MAX_FRAMES + 1)), scores)))
    finally:
        queue.stop()
    assert too_many.calls == [PROBE_MAX_FRAMES + 1] and probes == [4]


class HeldProbe(FakeModel):
    """Holds the probe's first run until released, so that a frame arrives while it runs."""

    def __init__(self) -> None:
        super().__init__()
        self.probing = threading.Event()
        self.release = threading.Event()

    def run(self, frames: np.ndarray) -> ModelOutputs:
        if len(self.calls) == 1:
            self.probing.set()
            assert self.release.wait(WAIT_S)
        return super().run(frames)


def test_a_frame_arriving_during_a_probe_cuts_it_short() -> None:
    held = HeldProbe()
    probes: list[int] = []
    queue = probed_queue(probes)

    async def scenario() -> None:
        await queue.submit(as_model(held), ArrayJob(frames(1), scores))
        await _wait(held.probing)
        waiting = asyncio.create_task(queue.submit(as_model(held), ArrayJob(frames(2), scores)))
        while queue.pending < 2:  # the frame waits behind the probe (its batch still counted as running)
            await asyncio.sleep(0.005)
        held.release.set()
        found, _ = await waiting
        assert found == [2.0]

    try:
        asyncio.run(scenario())
    finally:
        queue.stop()
    # The frame waited for one run of the probe (its frame four times) only, and the probe reported that run.
    assert probes == [PROBE_MAX_FRAMES] and held.calls == [1, PROBE_MAX_FRAMES, 1]
