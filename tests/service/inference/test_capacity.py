"""The capacity meter (usqa/service/inference/capacity.py): three bounds from measured per-frame costs, the lowest
wins; idle seconds say nothing; the export's cost stands in until frames are measured; streams at a rate."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import cv2
import numpy as np
import pytest

from usqa.contracts.frames import FrameSpec
from usqa.service.inference import scoring
from usqa.service.inference.batcher import PROBE_MAX_FRAMES, PROBE_REPEATS, InferenceQueue
from usqa.service.inference.capacity import MIN_SAMPLE_FRAMES, CapacityMeter, measure_frame_cost
from usqa.service.inference.model import LoadedModel
from usqa.service.inference.scoring import FrameScorer, ScoringOptions
from usqa.service.simulator import simulate_cine


class Clock:
    """(event loop thread CPU s, process CPU s), advanced by the test."""

    def __init__(self) -> None:
        self.loop, self.process = 0.0, 0.0

    def __call__(self) -> tuple[float, float]:
        return self.loop, self.process


def meter(
    clock: Clock,
    export_s: float | None = None,
    workers: int = 2,
    cores: int = 2,
    frames_on_loop: bool = False,
) -> CapacityMeter:
    return CapacityMeter(
        workers=workers,
        cores=cores,
        stream_fps=30.0,
        headroom=0.8,
        export_cost_s=lambda: export_s,
        clock=clock,
        frames_on_loop=frames_on_loop,
    )


def one_second(
    m: CapacityMeter, clock: Clock, frames: int, work_s: float, loop_s: float, cpu_s: float
) -> None:
    m.observe_work(frames, work_s)
    clock.loop += loop_s
    clock.process += cpu_s
    m.sample()


def test_nothing_is_claimed_before_a_measure() -> None:
    m = meter(Clock())
    estimate = m.estimate()
    assert (estimate.frames_per_second, estimate.streams, estimate.basis) == (None, None, "unknown")
    assert m.admits(1000) and estimate.describe() == "capacity not measured yet"


def test_the_exported_cost_stands_in_for_the_workers_until_frames_are_measured() -> None:
    clock = Clock()
    m = meter(clock, export_s=0.002)  # 2 ms a frame on 2 lanes: 1,000 frames/s
    estimate = m.estimate()
    assert (estimate.basis, estimate.bound, estimate.frames_per_second) == ("export", "workers", 1000.0)
    assert estimate.streams == 26  # floor(1000 x 0.8 / 30)
    m.sample()  # the first sample only starts the clock
    one_second(m, clock, frames=100, work_s=0.1, loop_s=0.05, cpu_s=0.15)
    assert m.estimate().basis == "measured"


def test_the_lowest_bound_wins_and_sets_the_streams() -> None:
    clock = Clock()
    m = meter(clock)
    m.sample()
    # 200 frames: workers 0.5 ms each (4,000/s on 2 lanes), the loop 2 ms each (500/s), the process 2.5 ms (800/s).
    one_second(m, clock, frames=200, work_s=0.1, loop_s=0.4, cpu_s=0.5)
    estimate = m.estimate()
    assert estimate.bounds == {"workers": 4000.0, "event_loop": 500.0, "cpu": 800.0}
    assert (estimate.bound, estimate.frames_per_second, estimate.streams) == ("event_loop", 500.0, 13)
    assert estimate.cost_ms == {"workers": 0.5, "event_loop": 2.0, "cpu": 2.5}
    assert m.admits(12) and not m.admits(13)
    assert "13 streams at 30 fps" in estimate.describe() and "event loop" in estimate.describe()


def test_an_idle_second_changes_nothing_and_costs_are_smoothed() -> None:
    clock = Clock()
    m = meter(clock)
    m.sample()
    one_second(m, clock, frames=200, work_s=0.2, loop_s=0.1, cpu_s=0.3)
    before = m.estimate()
    one_second(
        m, clock, frames=MIN_SAMPLE_FRAMES - 1, work_s=5.0, loop_s=0.5, cpu_s=0.9
    )  # health checks only
    assert m.estimate().cost_ms == before.cost_ms and m.estimate().streams == before.streams
    one_second(m, clock, frames=200, work_s=0.4, loop_s=0.1, cpu_s=0.3)  # the workers now twice as slow
    assert m.cost_s["workers"] == pytest.approx(0.001 + 0.3 * (0.002 - 0.001))


def test_the_first_stream_is_always_admitted() -> None:
    clock = Clock()
    m = meter(clock)
    m.sample()
    one_second(m, clock, frames=20, work_s=2.0, loop_s=0.0, cpu_s=0.0)  # 100 ms a frame: 20 frames/s
    assert m.estimate().streams == 0 and m.admits(0) and not m.admits(1)


def test_lanes_are_the_workers_the_cores_can_run() -> None:
    clock = Clock()
    m = meter(clock, workers=8, cores=2)
    m.sample()
    one_second(m, clock, frames=100, work_s=0.1, loop_s=0.0, cpu_s=0.0)
    assert m.estimate().bounds["workers"] == 2000.0  # 2 lanes, not 8, at 1 ms


def test_the_frame_cost_is_measured_through_the_workers_decode_path() -> None:
    seen: list[tuple[int, ...]] = []

    def run(frames: np.ndarray) -> None:
        seen.append(frames.shape)

    frames = np.random.default_rng(0).integers(0, 255, (4, 48, 48), dtype=np.uint8)
    cost = measure_frame_cost(run, frames, FrameSpec(size=32), repeats=10, warmup=2)
    assert (cost.frames, cost.threads) == (10, 1) and cost.frame_ms > 0 and cost.p50_ms > 0
    assert seen and all(shape[0] == 1 and shape[-2:] == (32, 32) for shape in seen)
    with pytest.raises(ValueError, match="no frames"):
        measure_frame_cost(run, frames[:0], FrameSpec(size=32))


def test_back_to_back_batches_scale_every_bound_to_the_saturated_regime() -> None:
    """At light load most frames find the workers idle and cost more; the batches taken straight after another
    say what a frame costs when the next is always waiting, and the bounds follow them."""
    clock = Clock()
    m = meter(clock, workers=1, cores=1)
    m.sample()
    for _ in range(10):  # 120 frames a second: 110 alone at 1.2 ms, 10 back to back at 0.4 ms
        m.observe_work(110, 0.132)
        m.observe_work(10, 0.004, warm=True)
        clock.loop += 0.06
        clock.process += 0.25
        m.sample()
    estimate = m.estimate()
    ratio = (0.004 / 10) / (0.136 / 120)
    assert estimate.warm_ratio == pytest.approx(ratio, abs=1e-4)
    assert estimate.cost_ms == pytest.approx({"workers": 1.1333, "event_loop": 0.5, "cpu": 2.0833}, abs=1e-3)
    wake = 0.136 / 120 - 0.0004  # what a wake-up costs a frame: 0.73 ms, paid by the worker and by the loop
    assert estimate.bounds == pytest.approx(
        {"workers": 1 / 0.0004, "event_loop": 1 / 0.00005, "cpu": 1 / (0.25 / 120 - 2 * wake)}, abs=1.0
    )  # the loop keeps a tenth of its cost; the process 480 frames/s as measured, 1,622 saturated
    assert estimate.bound == "cpu" and estimate.streams == 43  # floor(1,622 x 0.8 / 30)
    quiet = m.estimate()
    m.observe_probe(1, 0.0003)  # no frame served in that second: a probe alone changes nothing
    m.sample()
    assert m.estimate() == quiet
    # Evenly spaced streams: no batch finds another waiting, and the once-a-second probe is the warm figure.
    m.observe_work(120, 0.144)
    m.observe_probe(1, 0.0004)
    clock.process += 0.24
    m.sample()
    assert m.estimate().warm_ratio == pytest.approx(ratio + 0.3 * (0.0004 / 0.0012 - ratio), abs=1e-4)
    saturated = meter(Clock(), workers=1, cores=1)
    saturated.sample()
    saturated.observe_work(2000, 1.0, warm=True)  # every batch back to back: the ratio is 1
    saturated.sample()
    assert saturated.estimate().warm_ratio == 1.0


def test_the_probe_repeats_a_stream_frames_decoding_graphs_and_verdicts(
    served_model: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lone stream frame through the real queue and model: answered once, then probed in the worker with the
    same work (the verdicts included, so that cold and warm are timed alike), nothing of it answered."""
    verdicts: list[int] = []
    real = scoring.score_outputs

    def counted(*args: Any, **kwargs: Any) -> Any:
        verdicts.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(scoring, "score_outputs", counted)
    probes: list[tuple[int, float]] = []
    queue = InferenceQueue(
        workers=1, max_batch_frames=4, max_pending=4, on_probe=lambda n, cpu, spent: probes.append((n, cpu))
    )
    queue.start()
    scorer = FrameScorer(queue, max_pixels=1 << 20, max_frames=1)
    first = next(iter(simulate_cine("transrectal_prostate", 1, seed=3, size=96)))
    frame = cv2.imencode(".png", first.image)[1]
    try:
        batch = asyncio.run(
            scorer.score(served_model, frame.tobytes(), None, ScoringOptions(), single_frame=True)
        )
        for _ in range(500):
            if probes:
                break
            time.sleep(0.01)
    finally:
        queue.stop()
    assert len(batch.frames) == 1
    # The lone frame probed as a saturated batch: four copies of it, each decoded and judged again.
    assert len(probes) == 1 and probes[0][0] == PROBE_MAX_FRAMES and probes[0][1] > 0
    assert (
        len(verdicts) == 1 + PROBE_MAX_FRAMES * PROBE_REPEATS
    )  # the answer's, then each copy's in every run


def test_with_the_frames_on_the_loop_every_cost_shrinks_by_the_warm_ratio() -> None:
    """One core, the event loop running the frames: its CPU per frame holds the frames' work, and at light load
    the loop pays every frame's wake-up itself, in its I/O as in the work. Every cost is scaled by the share that
    warm work keeps (the probe's), not reduced by the work's own wake-up alone."""
    clock = Clock()
    m = meter(clock, workers=1, cores=1, frames_on_loop=True)
    m.sample()
    for _ in range(5):  # 120 frames a second at 1.0 ms of work each, the probe's copies at 0.6 ms a frame
        m.observe_work(120, 0.12, 0.12)
        m.observe_probe(4, 0.0024, 0.0150)  # its six runs took 15 ms of the loop's CPU: no frame's cost
        clock.loop += 0.18 + 0.0150  # 1.5 ms a frame on the loop: the work and its messages
        clock.process += 0.19 + 0.0150
        m.sample()
    estimate = m.estimate()
    assert estimate.warm_ratio == pytest.approx(0.6, abs=1e-4)
    assert estimate.bounds == pytest.approx(
        {"workers": 1 / 0.0006, "event_loop": 1 / (0.6 * 0.0015), "cpu": 1 / (0.6 * 0.19 / 120)}, abs=1.0
    )
    assert estimate.bound == "cpu" and estimate.streams == 28  # floor(1,053 x 0.8 / 30)
