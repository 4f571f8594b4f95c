from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import cv2
import pytest

from usqa.cli import main
from usqa.client import Client
from usqa.client.stream import format_result, stream_frames
from usqa.service.inference.model import LoadedModel

from ..service.conftest import MODEL_NAME, LiveServer, dicom_bytes, frame_of_level


def test_stream_frames_measures_latency_and_collects_the_summary(
    shared_server: LiveServer, served_model: LoadedModel
) -> None:
    frames = [frame_of_level(100 if i % 4 else 10, shape=(64, 64), seed=i) for i in range(12)]
    lines: list[str] = []

    def show(message: dict[str, Any], latency: float | None) -> None:
        lines.append(format_result(message, latency))

    report = asyncio.run(stream_frames(shared_server.ws, frames, fps=60, raw=True, on_message=show))
    assert report.sent == 12 and report.errors == 0
    assert report.results + report.summary["frames"]["dropped"] == 12  # type: ignore[index]
    assert len(report.latencies_ms) == report.results
    p = report.percentiles
    assert p["p50"] is not None and p["p99"] is not None and p["p50"] <= p["p99"]
    assert report.close_code == 1000 and report.versions == [served_model.number]
    assert lines[0].startswith(f"connected: {MODEL_NAME} version {served_model.number} ({served_model.task})")
    assert any(" rtt " in line and "score" in line for line in lines)


def test_usqa_stream_prints_feedback_and_percentiles(
    shared_server: LiveServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cine = tmp_path / "cine.dcm"
    cine.write_bytes(dicom_bytes([frame_of_level(90, shape=(40, 50), seed=i) for i in range(8)]))
    assert main(["stream", str(cine), "--url", shared_server.ws, "--fps", "50"]) == 0
    out = capsys.readouterr().out
    assert "connected:" in out and out.count("score ") >= 1
    assert "sent 8 frames at 50 fps" in out and "round-trip latency p50" in out
    assert '"received": 8' in out


def test_usqa_stream_reports_an_unreachable_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "f.png"
    cv2.imwrite(str(image), frame_of_level(50))
    assert main(["stream", str(image), "--url", "ws://127.0.0.1:1/ws/scan", "--quiet"]) == 2
    assert "cannot stream to ws://127.0.0.1:1/ws/scan" in capsys.readouterr().err


def test_play_without_a_rate_waits_for_each_answer(shared_server: LiveServer) -> None:
    """fps=None (the latency benchmark's saturated streams): the next frame goes when the last is answered,
    so the service never replaces one; every frame has its round trip."""
    frames = [frame_of_level(120, shape=(48, 48), seed=i) for i in range(10)]
    with Client(shared_server.http) as usqa:
        report = usqa.play(frames, fps=None, offset_s=0.01)
    assert report.sent == report.results == 10 and report.errors == 0
    assert report.summary is not None and report.summary["frames"]["dropped"] == 0
    assert len(report.latencies_ms) == 10 and report.close_code == 1000


def test_play_encodes_the_cine_before_the_stream_opens(
    shared_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Encoding on an open stream held up every other stream of the loop: four streams opened together, the
    first one's frames then arrived in a burst and the server replaced ~50 of 10,000 (test_load_with_swaps)."""
    import usqa.client.stream as stream_module
    from usqa.client.aio import AsyncClient

    events: list[str] = []
    encode = stream_module.encode_frames
    open_scan = AsyncClient.open_scan

    def encoding(*args: Any, **kwargs: Any) -> list[bytes]:
        events.append("encode")
        return encode(*args, **kwargs)

    def opening(self: AsyncClient) -> Any:
        events.append("open")
        return open_scan(self)

    monkeypatch.setattr(stream_module, "encode_frames", encoding)
    monkeypatch.setattr(AsyncClient, "open_scan", opening)
    frames = [frame_of_level(100, shape=(48, 40), seed=i) for i in range(3)]
    report = asyncio.run(stream_frames(shared_server.ws, frames, fps=60, raw=True))
    assert events == ["encode", "open"]
    assert report.sent == 3 and report.errors == 0 and report.close_code == 1000
