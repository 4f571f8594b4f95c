"""The load of `bench.service_latency`: the scenarios, raw onnxruntime and the service's per-frame work
in-process, and HTTP and WebSocket streams.

A paced stream sends one frame every 1/fps s: over HTTP a frame that falls due while the stream's previous
request is still out is skipped (dropped, as a scanner would), over the WebSocket frames are sent on schedule
and the service drops the stale ones. A saturated stream sends its next frame as soon as the previous answer
arrives. The WebSocket streams are `usqa.client`'s (`AsyncClient.play`); the HTTP ones post bare requests, as
they also load the naive peer, whose /assess answers in its own shape.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import cv2
import httpx
import numpy as np
import psutil

from usqa.service.inference.geometry import stack_pixels
from usqa.service.inference.model import LoadedModel
from usqa.service.inference.scoring import ScoringOptions, decode_for_spec, score_outputs

STREAM_COUNTS = (1, 4, 16)
FPS = 30.0
CINE_FRAMES = 64


@dataclass
class Result:
    target: str  # raw | raw-batchN | inprocess | assess | ws | naive
    streams: int
    fps: float | None  # None: saturated
    duration_s: float
    offered: int = 0  # frames that fell due (paced) or were sent (saturated)
    completed: int = 0
    dropped: int = 0
    failed: int = 0
    latencies_ms: list[float] = field(default_factory=list, repr=False)
    cpu_cores: float | None = None  # CPU seconds per wall second of the serving process
    rss_mb: float | None = None
    # The serving process's CPU seconds on its event loop's thread and on its other threads (None: not read).
    loop_cpu_s: float | None = None
    other_cpu_s: float | None = None
    # Its context switches (voluntary and not) on the same two, over the row (None: not read).
    loop_switches: int | None = None
    other_switches: int | None = None

    def row(self) -> dict[str, Any]:
        lat = np.asarray(self.latencies_ms) if self.latencies_ms else np.asarray([np.nan])
        p50, p99 = np.percentile(lat, [50, 99])
        data = {k: v for k, v in asdict(self).items() if k != "latencies_ms"}
        data.update(
            p50_ms=round(float(p50), 2),
            p99_ms=round(float(p99), 2),
            throughput_fps=round(self.completed / self.duration_s, 1),
            # Frames per CPU-second of the serving process: the fair comparison on a shared host.
            frames_per_cpu_s=round(self.completed / (self.cpu_cores * self.duration_s), 1)
            if self.cpu_cores
            else None,
            drop_rate=round(self.dropped / self.offered, 4) if self.offered else 0.0,
        )
        return data

    def line(self) -> str:
        """The row as the benchmarks print it while they run."""
        row = self.row()
        rate = "sat" if row["fps"] is None else f"{row['fps']:g} fps"
        return (
            f"{row['target']:>11s} {row['streams']:>3d} x {rate:>7s}: p50 {row['p50_ms']:7.2f} ms  "
            f"p99 {row['p99_ms']:7.2f} ms  {row['throughput_fps']:8.1f} fps  drops {row['drop_rate']:.1%}"
        )


def cine(size: int) -> list[np.ndarray]:
    from usqa.service.simulator.cine import simulate_cine

    return [f.image for f in simulate_cine("transrectal_prostate", CINE_FRAMES, seed=7, size=size)]


def encode(frames: Sequence[np.ndarray]) -> list[bytes]:
    return [bytes(cv2.imencode(".png", f)[1].tobytes()) for f in frames]


def _paced_streams(
    target: str, streams: int, fps: float | None, duration: float, work: Callable[[int], object]
) -> Result:
    """Each stream a thread calling `work(frame index)` in this process, paced like a scanner (or saturated)."""
    result = Result(target, streams, fps, duration)
    lock = threading.Lock()
    process = psutil.Process()
    stop_at = time.perf_counter() + duration

    def stream(index: int) -> None:
        period = 1.0 / fps if fps else 0.0
        next_due = time.perf_counter() + index * period / max(streams, 1)
        i = index
        while True:
            now = time.perf_counter()
            if now >= stop_at:
                return
            if period and now < next_due:
                time.sleep(next_due - now)
                continue
            started = time.perf_counter()
            work(i)
            elapsed = (time.perf_counter() - started) * 1000
            skipped = 0
            if period:
                next_due += period
                while next_due < time.perf_counter():  # frames that fell due while busy
                    next_due += period
                    skipped += 1
            with lock:
                result.offered += 1 + skipped
                result.completed += 1
                result.dropped += skipped
                result.latencies_ms.append(elapsed)
            i += 1

    cpu0 = sum(process.cpu_times()[:2])
    threads = [threading.Thread(target=stream, args=(k,)) for k in range(streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result.cpu_cores = round((sum(process.cpu_times()[:2]) - cpu0) / duration, 2)
    result.rss_mb = round(process.memory_info().rss / 2**20, 1)
    return result


def run_raw(
    model: LoadedModel, prepared: np.ndarray, streams: int, fps: float | None, duration: float
) -> Result:
    """The graphs alone on prepared frames (batch 1): the limit of the inference itself."""
    return _paced_streams(
        "raw", streams, fps, duration, lambda i: model.run(prepared[i % len(prepared)][None])
    )


def run_inprocess(
    model: LoadedModel, payloads: Sequence[bytes], streams: int, fps: float | None, duration: float
) -> Result:
    """The service's own per-frame work on the same PNG bytes, called in-process (batch 1): decode, signal
    check and preparation, both graphs, the verdict; the limit of what the service does without its I/O."""
    options = ScoringOptions()

    def work(i: int) -> None:
        decoded = decode_for_spec(
            model.spec,
            payloads[i % len(payloads)],
            None,
            width=None,
            height=None,
            max_pixels=2**24,
            max_frames=1,
        )
        outputs = model.run(stack_pixels(decoded.frames))
        score_outputs(model, outputs, decoded.frames, options)

    return _paced_streams("inprocess", streams, fps, duration, work)


def run_raw_batched(
    model: LoadedModel, prepared: np.ndarray, workers: int, batch: int, duration: float
) -> Result:
    """The ceiling with batching: one thread per worker running `batch` frames per call."""
    result = Result(f"raw-batch{batch}", workers, None, duration)
    lock = threading.Lock()
    stop_at = time.perf_counter() + duration
    frames = np.ascontiguousarray(np.resize(prepared, (batch, *prepared.shape[1:])))

    def work() -> None:
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            model.run(frames)
            with lock:
                result.completed += batch
                result.offered += batch
                result.latencies_ms.append((time.perf_counter() - started) * 1000)

    process = psutil.Process()
    cpu0 = sum(process.cpu_times()[:2])
    threads = [threading.Thread(target=work) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result.cpu_cores = round((sum(process.cpu_times()[:2]) - cpu0) / duration, 2)
    result.rss_mb = round(process.memory_info().rss / 2**20, 1)
    return result


async def http_streams(
    url: str, payloads: list[bytes], target: str, streams: int, fps: float | None, duration: float
) -> Result:
    result = Result(target, streams, fps, duration)
    limits = httpx.Limits(max_connections=streams, max_keepalive_connections=streams)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        loop = asyncio.get_running_loop()
        stop_at = loop.time() + duration

        async def stream(index: int) -> None:
            period = 1.0 / fps if fps else 0.0
            next_due = loop.time() + index * period / streams
            i = index
            while loop.time() < stop_at:
                if period and loop.time() < next_due:
                    await asyncio.sleep(next_due - loop.time())
                    continue
                started = time.perf_counter()
                response = await client.post(
                    url, content=payloads[i % len(payloads)], headers={"content-type": "image/png"}
                )
                elapsed = (time.perf_counter() - started) * 1000
                skipped = 0
                if period:
                    next_due += period
                    while next_due < loop.time():
                        next_due += period
                        skipped += 1
                result.offered += 1 + skipped
                result.dropped += skipped
                if response.status_code == 200:
                    result.completed += 1
                    result.latencies_ms.append(elapsed)
                else:
                    result.failed += 1
                i += 1

        await asyncio.gather(*(stream(k) for k in range(streams)))
    return result


async def ws_streams(
    url: str,
    payloads: Sequence[bytes] | Mapping[str, Sequence[bytes]],
    streams: int,
    fps: float | None,
    duration: float,
) -> Result:
    """`streams` streams through `AsyncClient.play` (the one /ws/scan client): frames on schedule at `fps`, or
    saturated (None: the next frame as soon as the last is answered); latency matched to frames by `seq`.
    `payloads` by exam (model name; None the default) spreads the streams over the exams in turn."""
    from usqa.client import AsyncClient

    result = Result("ws", streams, fps, duration)
    period = 1.0 / fps if fps else 0.0
    by_exam: dict[str | None, list[bytes]] = (
        {k: list(v) for k, v in payloads.items()} if isinstance(payloads, Mapping) else {None: list(payloads)}
    )
    names = list(by_exam)

    async def stream(index: int) -> None:
        name = names[index % len(names)]
        frames = by_exam[name]
        async with AsyncClient(url, model=name) as client:
            report = await client.play(
                frames[index:] + frames[:index],  # each stream starts at another frame of the cine
                fps=fps,
                offset_s=index * period / streams,  # and at another point of the frame period
                until=_for(duration),
            )
        result.offered += report.sent
        result.completed += report.results
        result.failed += report.errors
        result.dropped += int((report.summary or {}).get("frames", {}).get("dropped", 0))
        result.latencies_ms.extend(report.latencies_ms)

    await asyncio.gather(*(stream(k) for k in range(streams)))
    return result


def _for(duration: float) -> Callable[[], bool]:
    """True once `duration` s have passed since its first call (the stream's first frame, past `ready`)."""
    stop_at: float | None = None

    def over() -> bool:
        nonlocal stop_at
        now = time.perf_counter()
        if stop_at is None:
            stop_at = now + duration
        return now >= stop_at

    return over


def scenarios() -> list[tuple[int, float | None]]:
    return [(n, FPS) for n in STREAM_COUNTS] + [(max(STREAM_COUNTS), None)]
