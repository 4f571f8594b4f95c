"""usqa.client against real servers: assess, scan (sync and async), retries, pacing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from usqa.client import AsyncClient, Client, UsqaError
from usqa.client.pacing import ScanPacer
from usqa.service.api import create_app

from ..service.conftest import LiveServer, frame_of_level, make_settings, png_bytes, serve


def frames(count: int, level: int = 150) -> list[np.ndarray]:
    return [frame_of_level(level, (32, 32), seed=i) for i in range(count)]


def test_assess_gives_one_verdict_per_frame(fixture_server: LiveServer, tmp_path: Path) -> None:
    path = tmp_path / "frame.png"
    path.write_bytes(png_bytes(frame_of_level(150, (32, 32))))
    with Client(fixture_server.http) as usqa:
        for image in (path, str(path), path.read_bytes(), frame_of_level(150, (32, 32))):
            answer = usqa.assess(image)
            assert len(answer.frames) == 1
            frame = answer.frames[0]
            assert frame.verdict == "good" and frame.amenable and 0.5 < frame.score <= 1
        with pytest.raises(UsqaError) as refused:
            usqa.assess(b"not an image")
        assert refused.value.status == 415 and refused.value.code == "unsupported_format"


def test_scan_yields_a_verdict_per_frame_paced_without_drops(fixture_server: LiveServer) -> None:
    with Client(fixture_server.http) as usqa:
        verdicts = list(usqa.scan(frames(12)))
    assert [v.seq for v in verdicts] == list(range(12))  # paced: nothing was replaced
    assert {v.verdict for v in verdicts} == {"good"}


def test_async_scan_takes_an_async_source(fixture_server: LiveServer) -> None:
    async def source() -> AsyncIterator[np.ndarray]:
        for frame in frames(5, level=20):
            yield frame

    async def run() -> list[str]:
        async with AsyncClient(fixture_server.http) as usqa:
            seen = [v.verdict async for v in usqa.scan(source())]
            assessed = await usqa.assess(frame_of_level(150, (32, 32)))
            assert assessed.frames[0].verdict == "good"
            return seen

    assert asyncio.run(run()) == ["adjust"] * 5  # dim frames score low on the fixture model


def test_requests_are_retried_with_backoff_then_reported(registry_root: Path) -> None:
    settings = make_settings(registry_root, model_name="no-such-model")  # no model: 503
    with serve(create_app(settings)) as live, Client(live.http, retries=2, backoff_s=0.05) as usqa:
        started = time.monotonic()
        with pytest.raises(UsqaError) as refused:
            usqa.assess(frame_of_level(150, (32, 32)))
        assert refused.value.status == 503 and refused.value.code == "no_model"
        assert time.monotonic() - started >= 0.05 + 0.1  # two waits, doubling
    with (
        Client("http://127.0.0.1:1", retries=1, backoff_s=0.01) as offline,
        pytest.raises(httpx.ConnectError),
    ):
        offline.assess(b"x")


def test_the_pacer_follows_the_servers_answers() -> None:
    assert not ScanPacer().on_sent() and ScanPacer().window == 1
    pacer = ScanPacer(window=2)
    assert [pacer.on_sent(), pacer.on_sent()] == [0, 1] and not pacer.may_send()
    pacer.on_message({"type": "result", "seq": 0, "dropped": 0})
    assert pacer.may_send() and pacer.window == 2
    pacer.on_sent()
    pacer.on_message({"type": "result", "seq": 2, "dropped": 1})  # frame 1 was replaced: slow down
    assert pacer.in_flight == 0 and pacer.window == 1


def test_a_scan_names_its_session_ends_with_its_summary_and_surfaces_a_refused_frame(
    fixture_server: LiveServer,
) -> None:
    sent = [png_bytes(f) for f in frames(3)]
    sent.insert(1, b"\x89PNG\r\n\x1a\n but not really")  # a frame the server cannot decode
    with Client(fixture_server.http) as usqa:
        run = usqa.scan(sent)
        verdicts = list(run)
        report = usqa.session(str(run.session))
    assert [v.seq for v in verdicts] == [0, 1, 2, 3]
    refused = verdicts[1]
    assert refused.error is not None and not refused.amenable and refused.error.startswith("corrupt_frame: ")
    assert all(v.error is None for v in verdicts if v is not refused)
    assert run.summary is not None and run.summary["session"] == run.session == report["session"]
    assert run.summary["frames"]["failed"] == 1

    async def scan_async() -> tuple[list[str | None], str | None, dict | None]:
        async with AsyncClient(fixture_server.http) as client:
            arun = client.scan(sent)
            errors = [v.error async for v in arun]
            return errors, arun.session, arun.summary

    errors, session, summary = asyncio.run(scan_async())
    assert [e is not None for e in errors] == [False, True, False, False]
    assert summary is not None and summary["session"] == session
