"""Load with swaps: 4 streams at 30 fps while model versions are published and promoted under them.

Promises checked: no frame fails or goes unaccounted (at most 1 % replaced by a newer one, and reported),
every stream runs to its end, every replica-side swap is announced in the
streams; figures recorded: the p99 round trip in steady state and during swaps (the window from a promotion
to 1.5 s after it). Latency is recorded, not asserted: these machines are shared and noisy (the report
compares it with the target).
"""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from usqa.client.stream import StreamReport, stream_frames
from usqa.service.registry import CHAMPION, ModelRegistry
from usqa.service.simulator import simulate_cine

from ..service.conftest import MODEL_NAME
from .conftest import Figures, cases, service_under_test

SECTION = "load_with_swaps"

STREAMS = 4
FPS = 30.0
SWAP_WINDOW_S = 1.5


def _p99(values: list[float]) -> float:
    return float(np.percentile(values, 99)) if values else float("nan")


def test_streams_continue_while_versions_are_promoted(
    reliability_registry: Path, tmp_path: Path, redis_url: str, figures: Figures
) -> None:
    frames_per_stream = cases(120, 2500)  # full: 10,000 frames in all
    versions = cases(2, 5)
    duration = frames_per_stream / FPS
    cine = [f.image for f in simulate_cine("transrectal_prostate", 60, seed=5)]
    received: list[tuple[float, float]] = []  # (receive time, round trip ms)
    lock = threading.Lock()

    def on_message(message: dict[str, Any], latency_ms: float | None) -> None:
        if message["type"] == "result" and latency_ms is not None:
            with lock:
                received.append((time.perf_counter(), latency_ms))

    reports: list[StreamReport] = []
    failures: list[str] = []

    async def all_streams(url: str) -> None:
        frames = [cine[i % len(cine)] for i in range(frames_per_stream)]
        results = await asyncio.gather(
            *(stream_frames(url, frames, fps=FPS, on_message=on_message) for _ in range(STREAMS)),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                failures.append(f"{type(result).__name__}: {result}")
            else:
                reports.append(result)

    root = tmp_path / "service"
    with service_under_test(
        reliability_registry, root, redis_url=redis_url, registry_poll_s=1.0, inference_workers=2
    ) as running:
        registry = ModelRegistry(root / "models")
        first = registry.load(MODEL_NAME, CHAMPION)
        sources = tmp_path / "sources"
        sources.mkdir()
        files = {name: shutil.copy(first.path / name, sources / name) for name in first.manifest.files}
        streamer = threading.Thread(target=lambda: asyncio.run(all_streams(running.live.ws)))
        streamer.start()
        promoted_at: list[float] = []
        for _ in range(versions):
            time.sleep(duration / (versions + 1))
            version = registry.publish(first.manifest, {k: Path(v) for k, v in files.items()})
            registry.promote(MODEL_NAME, version.version)
            promoted_at.append(time.perf_counter())
            figures.count("versions_promoted")
        streamer.join(timeout=duration + 60)
        assert not streamer.is_alive(), "the streams did not finish"
        assert running.log.since(0) == []

    sent = sum(r.sent for r in reports)
    scored = sum(r.results for r in reports)
    errors = sum(r.errors for r in reports)
    swaps_seen = min((len(r.swaps) for r in reports), default=0)
    in_swap = [
        latency
        for at, latency in received
        if any(t <= at - latency / 1000 <= t + SWAP_WINDOW_S for t in promoted_at)
    ]
    steady = [
        latency
        for at, latency in received
        if not any(t <= at - latency / 1000 <= t + SWAP_WINDOW_S for t in promoted_at)
    ]
    # Frames the server replaced with a newer one of the same stream (its latest-frame mailbox), as each
    # stream's summary reports them: said to the client, not lost.
    dropped = sum(int((r.summary or {}).get("frames", {}).get("dropped", 0)) for r in reports)
    figures.count("frames_sent", sent)
    figures.count("frames_scored", scored)
    figures.count("frames_dropped", dropped)
    figures.count("failed_frames", errors + (sent - scored - dropped))
    figures.count("streams_failed", len(failures) + sum(r.close_code not in (1000, None) for r in reports))
    figures.peak("swaps_seen_per_stream", swaps_seen)
    figures.peak("p99_steady_ms", _p99(steady))
    figures.peak("p99_during_swap_ms", _p99(in_swap))
    figures.peak("p99_swap_over_steady", _p99(in_swap) / _p99(steady) if steady and in_swap else float("nan"))
    figures.note(
        f"{STREAMS} streams at {FPS:.0f} fps of PNG frames, {versions} versions published and promoted "
        f"(Redis announcements); the server runs in the test process, so client and server share its cores"
    )
    assert failures == []
    assert len(reports) == STREAMS and all(r.sent == frames_per_stream for r in reports)
    # No frame fails or goes unaccounted. A swap's load and warm-up share the two cores with the client, which
    # runs in this process: once in several runs on 3.12 the mailbox replaced a few frames (4 of 480 on
    # 6 Dec 2026). At most 1 % may be, and each must be reported; more is a regression.
    assert errors == 0 and scored + dropped == sent, (errors, scored, dropped, sent)
    assert dropped <= sent // 100, f"{dropped} of {sent} frames replaced in the server's mailbox"
    assert swaps_seen == versions, [len(r.swaps) for r in reports]
    assert [v for r in reports for v in r.versions][-1] == registry.resolve(MODEL_NAME, CHAMPION)
