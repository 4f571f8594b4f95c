"""Capacity known (issue #27 item 3): once frames have been measured, /readyz and /metrics say how many streams
this machine carries, and the stream beyond them is refused with 1013 (try again) and a reason with the numbers;
a stream that ends gives its place back.

The service runs with `USQA_STREAM_FPS=240` (the rate it plans each stream at), so that the capacity is a handful
of streams whatever the machine, well below the fixed slot count.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import httpx
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from usqa.client.stream import stream_frames
from usqa.contracts.protocol import CloseCode
from usqa.service.api import create_app
from usqa.service.simulator import simulate_cine

from ..conftest import FIXTURE_MODEL_NAME, make_settings, serve

RECV_TIMEOUT_S = 10.0
SLOTS = 64


def _answer(ws: ClientConnection) -> tuple[str, int | None, str]:
    try:
        return json.loads(ws.recv(timeout=RECV_TIMEOUT_S))["type"], None, ""
    except ConnectionClosed:
        return "closed", ws.close_code, ws.close_reason or ""


def _metric(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.split()[-1])
    return None


def test_streams_past_the_measured_capacity_are_refused_with_try_again(registry_root) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(
        registry_root, model_name=FIXTURE_MODEL_NAME, stream_fps=240.0, max_scan_sessions=SLOTS
    )
    frames = [f.image for f in simulate_cine("transrectal_prostate", 60, seed=4)]
    with serve(create_app(settings)) as live:
        before = httpx.get(f"{live.http}/readyz", timeout=10).json()["capacity"]
        assert before["basis"] in ("export", "unknown") and before["measured_frames"] == 0
        # Three seconds of frames at 200 fps: the meter's one-second samples fill.
        report = asyncio.run(stream_frames(live.ws, frames * 10, fps=200.0))
        assert report.errors == 0 and report.results >= len(frames) * 5
        deadline = time.monotonic() + 10
        while (capacity := httpx.get(f"{live.http}/readyz", timeout=10).json()["capacity"])[
            "basis"
        ] != "measured":
            assert time.monotonic() < deadline, capacity
            time.sleep(0.2)
        streams = capacity["streams"]
        assert capacity["stream_fps"] == 240.0 and capacity["headroom"] == 0.8
        assert (
            set(capacity["bounds"]) == {"workers", "event_loop", "cpu"}
            and capacity["bound"] in capacity["bounds"]
        )
        assert capacity["frames_per_second"] == min(capacity["bounds"].values())
        assert 0 <= streams < SLOTS and streams == int(capacity["frames_per_second"] * 0.8 // 240)
        scraped = httpx.get(f"{live.http}/metrics", timeout=10).text
        assert _metric(scraped, "usqa_capacity_streams") == streams
        assert _metric(scraped, "usqa_frame_cost_seconds") is not None
        with contextlib.ExitStack() as opened:
            held = [
                opened.enter_context(connect(live.ws, open_timeout=RECV_TIMEOUT_S)) for _ in range(streams)
            ]
            assert all(_answer(ws)[0] == "ready" for ws in held)
            with connect(live.ws, open_timeout=RECV_TIMEOUT_S) as extra:
                kind, code, reason = _answer(extra)
            assert (kind, code) == ("closed", CloseCode.TRY_AGAIN)
            assert reason == f"at capacity: {streams} streams at 240 fps on this machine; try again later"
            refused = httpx.get(f"{live.http}/metrics", timeout=10).text
            assert _metric(refused, 'usqa_scan_sessions_refused_total{reason="capacity"}') == 1.0
            if held:  # a stream that ends gives its place back
                held[0].close()
                deadline = time.monotonic() + 5
                while live.app.state.service.sessions.open >= streams:
                    assert time.monotonic() < deadline
                    time.sleep(0.02)
                with connect(live.ws, open_timeout=RECV_TIMEOUT_S) as again:
                    assert _answer(again)[0] == "ready"
