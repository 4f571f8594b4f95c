"""What the service can carry (issue #27 item 3): frames per second at saturation, and streams at a scanner's rate.

A fixed slot count says nothing of what a model costs: a slower model would let every stream slow down instead of
refusing the next one. So the service measures what a frame costs it, on this machine, while frames flow, and
takes the lowest of three bounds on its throughput:

- `workers`: lanes / W, with W the inference workers' wall time per frame (decode, preparation, the graphs and the
  verdict, a batch's time shared by its frames) and lanes = min(inference workers, cores);
- `event_loop`: 1 / L, with L the event loop thread's CPU time per frame (WebSocket messages, JSON, bookkeeping):
  one thread, whatever the cores;
- `cpu`: cores / C, with C the whole process's CPU time per frame.

Each is a moving average over one-second samples with at least `MIN_SAMPLE_FRAMES` frames (an idle second says
nothing of a frame's cost). Before any sample, W is the costliest served version's per-frame cost measured at
export (manifest `cost`, `measure_frame_cost`) and the other bounds are unknown.

Saturation is a different regime from the load the costs are measured at. At a few streams of 30 fps each frame
finds the core idle: cold caches, a wake-up of the worker and of the loop per frame. At saturation the next frame is
always waiting. On 2 cores at 4 x 30 fps a frame cost the worker thread and the event loop's thread each about 0.2
to 1.2 ms of CPU more than at saturation, whatever the frame (64 px PNG to 1920x1080 JPEG; the capture-card
benchmark prints both threads' CPU per frame in each regime): a price per wake-up more than a proportion of the
work. So the meter also times warm work: batches a worker took without waiting, because it had just finished
another, and, at most once a second, a batch that found the worker idle run again several times straight after it
(its decoding, graphs and verdicts, results discarded: `InferenceQueue`'s probe, which reports its warmest run).
Their per-frame CPU time over all batches' is the `warm_ratio`, a moving average over samples with warm frames, at
most 1; CPU time, not wall time, because on a shared core the event loop answering a batch runs while its probe
does. Then p = (the workers' CPU per frame) x (1 - warm_ratio) is what a wake-up costs a frame. Each frame served at
light load wakes two threads, the worker and then the event loop for the answer, and each pays about p; at
saturation those wake-ups are shared by many frames, so the bounds use W - p, L - p and C - 2 p, each at least
`MIN_SATURATED_SHARE` of its measured value. At saturation every batch is warm, the ratio is 1 and p is 0, so
nothing changes there. (Scaling every cost by the ratio instead over-corrected large frames, whose cold share is
small; a probe of one run without the verdicts, itself still cold, left p at about half its size.)

With the frames on the event loop (`frames_on_loop`, one core) the loop pays each frame's whole wake-up at light load,
in its messages as in the work, and its cost holds both: on the 2-core machine about 0.8 ms of a frame's CPU at
4 x 30 fps is gone at saturation, for 64 px PNG and 1920x1080 JPEG alike (the capture-card benchmark's "CPU per
frame at 4 x 30 fps / saturated"), of which W - p removes only the work's share, and the estimate fell well short.
There every cost is scaled by the warm ratio: the messages are taken to warm up as the work does.

The service admits streams up to `streams` = floor(frames_per_second x headroom / stream_fps): the headroom keeps
the workers' queue short, so a stream beyond it is refused with the try-again close code while the streams already
running keep their latency.
"""

from __future__ import annotations

import asyncio
import math
import os
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from usqa.contracts.frames import FrameSpec
from usqa.service.inference.geometry import stack_pixels
from usqa.service.inference.providers import usable_cores
from usqa.service.inference.scoring import decode_for_spec
from usqa.service.registry.manifest import FrameCost

Bound = Literal["workers", "event_loop", "cpu"]
BOUNDS: tuple[Bound, ...] = ("workers", "event_loop", "cpu")
# A one-second sample counts only with this many frames in it: below, the loop's idle work (health checks,
# timers) would be charged to a handful of frames.
MIN_SAMPLE_FRAMES = 20
# Weight of the newest sample in the moving averages: about the last five seconds of streaming.
SMOOTHING = 0.3
# The saturated costs keep at least this share of the measured ones (module docstring): a wake-up cannot cost a
# frame more than the frame's own work, and a disturbed probe cannot promise ten times the measured capacity.
MIN_SATURATED_SHARE = 0.1
# Frames timed by `measure_frame_cost` after the warm-up ones.
SAMPLE_S = 1.0
COST_FRAMES = 200
COST_WARMUP = 20


@dataclass(frozen=True)
class CapacityEstimate:
    """What the service says it can carry now, and why."""

    frames_per_second: float | None  # estimated saturation; None before any measure
    streams: int | None  # streams admitted at `stream_fps` with the headroom
    stream_fps: float
    headroom: float
    bound: Bound | None  # the lowest bound
    basis: Literal["measured", "export", "unknown"]
    bounds: dict[str, float] = field(default_factory=dict)  # frames/s per bound
    cost_ms: dict[str, float] = field(default_factory=dict)  # per frame, per bound, as measured
    measured_frames: int = 0
    # Warm work's per-frame CPU over all batches' (module docstring): a wake-up costs the rest of it.
    warm_ratio: float | None = None

    def describe(self) -> str:
        if self.frames_per_second is None or self.streams is None:
            return "capacity not measured yet"
        return (
            f"{self.streams} streams at {self.stream_fps:g} fps ({self.frames_per_second:.0f} frames/s at "
            f"saturation, bound by the {str(self.bound).replace('_', ' ')}, {self.basis})"
        )


class CapacityMeter:
    """Per-frame costs measured while frames flow; `observe_work` from worker threads, `sample` from the loop."""

    def __init__(
        self,
        *,
        workers: int,
        stream_fps: float,
        headroom: float,
        cores: int | None = None,
        export_cost_s: Callable[[], float | None] = lambda: None,
        clock: Callable[[], tuple[float, float]] | None = None,
        frames_on_loop: bool = False,
    ) -> None:
        self.cores = cores or usable_cores()  # the cores this process may run on (its CPU affinity)
        self.lanes = max(1, min(workers, self.cores))
        self.stream_fps = stream_fps
        self.headroom = headroom
        self.export_cost_s = export_cost_s
        self.frames_on_loop = frames_on_loop
        # (this thread's CPU seconds, the process's CPU seconds), read on the event loop's thread.
        self._clock = clock or (lambda: (time.thread_time(), time.process_time()))
        self._lock = threading.Lock()
        self._frames = 0
        self._work_s = 0.0
        self._work_cpu_s = 0.0
        self._warm_frames = 0
        self._warm_cpu_s = 0.0
        self._probe_cpu_s = 0.0
        self._total_frames = 0
        self._last: tuple[float, float] | None = None
        self.cost_s: dict[Bound, float] = {}
        self.warm_ratio: float | None = None
        self.work_cpu_s: float | None = None  # the workers' CPU per frame, all batches

    def observe_work(
        self, frames: int, seconds: float, cpu_s: float | None = None, warm: bool = False
    ) -> None:
        """A worker finished a batch of `frames` in `seconds` of its wall time (preparation to verdicts) and `cpu_s`
        of its thread's CPU time (None: the wall time); `warm`: it took the batch without waiting, straight after
        another."""
        if frames <= 0:
            return
        cpu = seconds if cpu_s is None else cpu_s
        with self._lock:
            self._frames += frames
            self._work_s += seconds
            self._work_cpu_s += cpu
            self._total_frames += frames
            if warm:
                self._warm_frames += frames
                self._warm_cpu_s += cpu

    def observe_probe(self, frames: int, cpu_s: float, spent_s: float = 0.0) -> None:
        """A batch run again straight after itself (`InferenceQueue`'s probe), `cpu_s` of its thread's CPU time
        in its warmest run: warm work, not a frame served; `spent_s`, the CPU time of all its runs, is left out of
        the frames' costs."""
        if frames <= 0:
            return
        with self._lock:
            self._warm_frames += frames
            self._warm_cpu_s += cpu_s
            self._probe_cpu_s += spent_s

    def sample(self) -> None:
        """Close a sample (about a second): fold its per-frame costs into the averages when it had frames."""
        now = self._clock()
        with self._lock:
            frames, work_s, work_cpu_s = self._frames, self._work_s, self._work_cpu_s
            warm_frames, warm_cpu_s, probe_cpu_s = self._warm_frames, self._warm_cpu_s, self._probe_cpu_s
            self._frames, self._work_s, self._work_cpu_s = 0, 0.0, 0.0
            self._warm_frames, self._warm_cpu_s, self._probe_cpu_s = 0, 0.0, 0.0
        last, self._last = self._last, now
        if last is None or frames < MIN_SAMPLE_FRAMES:
            return
        # The probe's runs are no frame's cost: out of the process's CPU, and of the loop's where it ran them.
        loop_probe_s = probe_cpu_s if self.frames_on_loop else 0.0
        measured: dict[Bound, float] = {
            "workers": work_s / frames,
            "event_loop": max(0.0, now[0] - last[0] - loop_probe_s) / frames,
            "cpu": max(0.0, now[1] - last[1] - probe_cpu_s) / frames,
        }
        for bound, value in measured.items():
            self.cost_s[bound] = _smoothed(self.cost_s.get(bound), value)
        if work_cpu_s > 0:
            self.work_cpu_s = _smoothed(self.work_cpu_s, work_cpu_s / frames)
        if warm_frames > 0 and work_cpu_s > 0:
            ratio = min(1.0, (warm_cpu_s / warm_frames) / (work_cpu_s / frames))
            self.warm_ratio = _smoothed(self.warm_ratio, ratio)

    def estimate(self) -> CapacityEstimate:
        costs: dict[str, float] = {str(k): v for k, v in self.cost_s.items()}
        basis: Literal["measured", "export", "unknown"] = "measured"
        ratio = self.warm_ratio
        if "workers" not in costs:
            exported = self.export_cost_s()
            if exported is None or exported <= 0:
                return CapacityEstimate(None, None, self.stream_fps, self.headroom, None, "unknown")
            # Export times frames back to back: already warm.
            costs, basis, ratio = {"workers": exported}, "export", None
        parallel = {"workers": self.lanes, "event_loop": 1, "cpu": self.cores}
        if ratio is None:
            saturated = costs
        elif self.frames_on_loop:
            saturated = {name: max(MIN_SATURATED_SHARE, ratio) * cost for name, cost in costs.items()}
        else:
            saturated = _saturated(costs, (self.work_cpu_s or 0.0) * (1.0 - ratio))
        bounds = {name: parallel[name] / cost for name, cost in saturated.items() if cost > 0}
        if not bounds:
            return CapacityEstimate(None, None, self.stream_fps, self.headroom, None, "unknown")
        bound = min(bounds, key=lambda name: bounds[name])
        fps = bounds[bound]
        return CapacityEstimate(
            frames_per_second=round(fps, 1),
            streams=max(0, math.floor(fps * self.headroom / self.stream_fps)),
            stream_fps=self.stream_fps,
            headroom=self.headroom,
            bound=bound,  # type: ignore[arg-type]
            basis=basis,
            bounds={name: round(value, 1) for name, value in bounds.items()},
            cost_ms={name: round(cost * 1000, 4) for name, cost in costs.items()},
            measured_frames=self._total_frames,
            warm_ratio=None if ratio is None else round(ratio, 4),
        )

    def admits(self, running: int) -> bool:
        """Whether one more stream fits beside `running` ones: always before the capacity is known, and always the
        first (it slows no other stream down, and a busy moment must not lock every scanner out)."""
        streams = self.estimate().streams
        return streams is None or running < max(1, streams)


def _saturated(costs: dict[str, float], wake_s: float) -> dict[str, float]:
    """The measured per-frame costs less what a frame's wake-up costs each thread it wakes (module docstring)."""
    paid = {"workers": wake_s, "event_loop": wake_s, "cpu": 2 * wake_s}
    return {name: max(MIN_SATURATED_SHARE * cost, cost - paid[name]) for name, cost in costs.items()}


def _smoothed(before: float | None, value: float) -> float:
    return value if before is None else before + SMOOTHING * (value - before)


async def sample_periodically(meter: CapacityMeter, period_s: float = SAMPLE_S) -> None:
    """Close a sample every `period_s` on the event loop's thread, until cancelled."""
    while True:
        await asyncio.sleep(period_s)
        meter.sample()


def measure_frame_cost(
    run: Callable[[np.ndarray], Any],
    frames: Sequence[np.ndarray] | np.ndarray,
    spec: FrameSpec,
    *,
    repeats: int = COST_FRAMES,
    warmup: int = COST_WARMUP,
) -> FrameCost:
    """What one frame costs, as an inference worker spends it: a PNG at the model's input size decoded and
    prepared for `spec`, `run` (both graphs and the served rejector) at batch 1, in this thread. Export records it
    in the manifest; the service starts from it until it has measured its own frames."""
    encoded = [cv2.imencode(".png", np.asarray(frame, np.uint8))[1].tobytes() for frame in frames]
    if not encoded:
        raise ValueError("no frames to measure the per-frame cost on")
    side = spec.size * spec.size * 4

    def one(data: bytes) -> float:
        started = time.perf_counter()
        decoded = decode_for_spec(
            spec, data, "image/png", width=None, height=None, max_pixels=side, max_frames=1
        )
        run(stack_pixels(decoded.frames))
        return time.perf_counter() - started

    for i in range(warmup):
        one(encoded[i % len(encoded)])
    times = [one(encoded[i % len(encoded)]) for i in range(repeats)]
    return FrameCost(
        frame_ms=round(1000 * statistics.fmean(times), 4),
        p50_ms=round(1000 * statistics.median(times), 4),
        frames=repeats,
        threads=1,
        cpu=cpu_model(),
        cores=os.cpu_count() or 1,
        measured=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def cpu_model(unknown: str = "unknown") -> str:
    """The CPU's model name from /proc/cpuinfo, or `unknown` where there is none."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return unknown
