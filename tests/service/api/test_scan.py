from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from usqa.client.stream import stream_frames
from usqa.contracts.protocol import CloseCode
from usqa.service.api import create_app
from usqa.service.api.scan_messages import (
    MSG_BAD_JSON,
    MSG_MULTI_FRAME,
    MSG_SESSIONS_REASON,
    MSG_TOKEN_REASON,
    MSG_TOO_BIG,
    MSG_TOO_BIG_REASON,
    MSG_UNKNOWN_TYPE,
    SERVER_MESSAGES,
)
from usqa.service.frames.errors import CORRUPT_IMAGE
from usqa.service.inference.model import LoadedModel

from ..conftest import (
    FIXTURE_MODEL_NAME,
    MODEL_NAME,
    SEGMENT_MODEL_NAME,
    LiveServer,
    dicom_bytes,
    frame_of_level,
    make_settings,
    png_bytes,
    reference_scores,
    serve,
)

RECV_TIMEOUT_S = 10.0


def receive(ws: ClientConnection) -> dict[str, Any]:
    """The next server message, checked against its documented schema."""
    message: dict[str, Any] = json.loads(ws.recv(timeout=RECV_TIMEOUT_S))
    SERVER_MESSAGES[message["type"]].model_validate(message)
    return message


def until(ws: ClientConnection, kind: str, limit: int = 500) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Read messages until one of `kind` arrives; returns it and everything before it."""
    seen = []
    for _ in range(limit):
        message = receive(ws)
        if message["type"] == kind:
            return message, seen
        seen.append(message)
    raise AssertionError(f"no {kind!r} message within {limit} messages")


def closed_with(ws: ClientConnection) -> tuple[int | None, str]:
    with pytest.raises(ConnectionClosed):
        for _ in range(100):
            ws.recv(timeout=RECV_TIMEOUT_S)
    return ws.close_code, ws.close_reason or ""


def test_encoded_frames_get_results_then_a_summary(fixture_server: LiveServer) -> None:
    # The fixture controller scores brightness: three bright frames, then seven dark ones.
    levels = [120] * 3 + [10] * 7
    with connect(fixture_server.ws) as ws:
        ready = receive(ws)
        assert ready["type"] == "ready" and ready["model"]["name"] == FIXTURE_MODEL_NAME
        threshold = ready["threshold"]
        results = []
        for i, level in enumerate(levels):
            ws.send(png_bytes(frame_of_level(level, seed=i)))
            results.append(until(ws, "result")[0])  # one at a time: nothing is dropped
        ws.send(json.dumps({"type": "end"}))
        summary, _ = until(ws, "summary")
        assert closed_with(ws) == (CloseCode.NORMAL, "")
    assert [r["seq"] for r in results] == list(range(len(levels)))
    assert [r["amenable"] for r in results] == [level > 50 for level in levels]
    assert all(
        r["threshold"] == threshold and r["model"] == {"name": FIXTURE_MODEL_NAME, "version": 1}
        for r in results
    )
    # Guidance: good at once (first frame); after the view turns bad the smoothed score has to fall below
    # the band and stay there for the dwell, so the switch to adjust comes once, a few frames late.
    guidance = [r["guidance"] for r in results]
    switch = guidance.index("adjust")
    assert guidance == ["good"] * switch + ["adjust"] * (len(levels) - switch)
    assert switch >= 3 + 3 and results[switch]["guidance_changed"]
    assert sum(r["guidance_changed"] for r in results) == 2  # the first frame, then the switch
    assert results[0]["prediction"]["task"] == "classify"
    assert all(r["latency_ms"]["total"] >= r["latency_ms"]["inference"] > 0 for r in results)
    assert summary["frames"] == {"received": 10, "scored": 10, "dropped": 0, "failed": 0}
    assert summary["amenable_fraction"] == pytest.approx(3 / 10, abs=1e-4)
    assert sum(summary["score_histogram"]["counts"]) == 10
    assert summary["guidance_frames"] == {
        "good": switch,
        "adjust": 10 - switch,
        "no_signal": 0,
        "out_of_scope": 0,
    }
    assert summary["model_versions"] == [1]


def test_raw_frames_after_a_hello(shared_server: LiveServer, served_model: LoadedModel) -> None:
    image = frame_of_level(90, shape=(48, 64))
    with connect(shared_server.ws) as ws:
        receive(ws)
        ws.send(json.dumps({"type": "hello", "format": "raw", "width": 64, "height": 48}))
        configured = receive(ws)
        assert configured == {"type": "configured", "format": "raw", "width": 64, "height": 48}
        ws.send(image.tobytes())
        result, _ = until(ws, "result")
        ws.send(bytes(10))  # wrong length for 64 x 48: an error for this frame, the stream goes on
        error, _ = until(ws, "error")
        ws.send(image.tobytes())
        again, _ = until(ws, "result")
        ws.send(json.dumps({"type": "end"}))
        summary, _ = until(ws, "summary")
    assert result["score"] == pytest.approx(reference_scores(served_model, [image])[0], abs=1e-5)
    assert result["model"] == {"name": MODEL_NAME, "version": served_model.number}
    assert (error["seq"], error["code"]) == (1, "raw_size_mismatch")
    assert again["seq"] == 2
    assert summary["frames"] == {"received": 3, "scored": 2, "dropped": 0, "failed": 1}


def test_bad_messages_are_answered_not_fatal(shared_server: LiveServer) -> None:
    png = png_bytes(frame_of_level(60))
    with connect(shared_server.ws) as ws:
        receive(ws)
        ws.send("not json")
        assert receive(ws)["message"] == MSG_BAD_JSON
        ws.send(json.dumps({"type": "dance"}))
        assert receive(ws)["message"] == MSG_UNKNOWN_TYPE.format(type="dance")
        ws.send(json.dumps({"type": "hello", "format": "raw"}))
        bad_hello = receive(ws)
        assert bad_hello["code"] == "bad_hello" and "raw frames need width and height" in bad_hello["message"]
        ws.send(png[: len(png) // 2])
        corrupt = receive(ws)
        assert (corrupt["seq"], corrupt["message"]) == (0, CORRUPT_IMAGE.format(kind="PNG"))
        ws.send(dicom_bytes([frame_of_level(50, seed=i) for i in range(2)]))
        assert receive(ws)["message"] == MSG_MULTI_FRAME.format(count=2)
        ws.send(png)
        assert until(ws, "result")[0]["seq"] == 2


def test_the_newest_frame_wins_under_a_flood(shared_server: LiveServer) -> None:
    # Large frames that compress to a few kilobytes: they arrive in microseconds and take milliseconds
    # to decode and shrink, so frames sent back to back wait in the slot and are replaced by newer ones.
    stripes = (np.arange(3000)[:, None] // 50 % 2 * 150 + np.arange(3000)[None, :] // 700 * 10).astype(
        np.uint8
    )
    frames = [png_bytes(stripes + i) for i in range(3)]
    sent = 40
    with connect(shared_server.ws) as ws:
        receive(ws)
        for i in range(sent):
            ws.send(frames[i % 3])
        ws.send(json.dumps({"type": "end"}))
        summary, before = until(ws, "summary")
    results = [m for m in before if m["type"] == "result"]
    counts = summary["frames"]
    assert counts["received"] == sent
    assert counts["scored"] + counts["dropped"] + counts["failed"] == sent
    assert counts["dropped"] > 0 and counts["scored"] == len(results)
    assert results[-1]["seq"] == sent - 1  # the last frame is never dropped
    seqs = [r["seq"] for r in results]
    assert seqs == sorted(seqs) and results[-1]["dropped"] == counts["dropped"]
    assert summary["drop_rate"] == pytest.approx(counts["dropped"] / sent, abs=1e-4)


def test_segmentation_results_carry_outlines(registry_root: Path) -> None:
    settings = make_settings(registry_root, model_name=SEGMENT_MODEL_NAME, target_rejection=0.15)
    image = np.zeros((100, 100), dtype=np.uint8)
    image[30:70, 30:70] = 230
    with serve(create_app(settings)) as live, connect(live.ws) as ws:
        receive(ws)
        ws.send(png_bytes(image))
        result, _ = until(ws, "result")
    prediction = result["prediction"]
    assert prediction["task"] == "segment" and "mask_png_base64" not in prediction
    assert prediction["mask_area_fraction"] == pytest.approx(0.16, abs=0.01)
    (outline,) = prediction["outlines"]
    xs, ys = zip(*outline, strict=True)
    assert min(xs) >= 29 and max(xs) <= 71 and min(ys) >= 29 and max(ys) <= 71


def test_limits_sessions_and_message_size(registry_root: Path) -> None:
    settings = make_settings(registry_root, max_scan_sessions=1, max_ws_message_bytes=2_000)
    with serve(create_app(settings)) as live:
        with connect(live.ws) as first:
            receive(first)
            with connect(live.ws) as second:
                assert closed_with(second) == (CloseCode.TRY_AGAIN, MSG_SESSIONS_REASON)
            first.send(bytes(3_000))
            error, _ = until(first, "error")
            assert error["message"] == MSG_TOO_BIG.format(size=3_000, limit=2_000)
            summary, _ = until(first, "summary")
            assert summary["frames"]["received"] == 0
            assert closed_with(first) == (CloseCode.TOO_BIG, MSG_TOO_BIG_REASON)
        # The slot is free again once the first stream has closed.
        with connect(live.ws) as third:
            assert receive(third)["type"] == "ready"


def test_a_token_can_be_required_for_streams(registry_root: Path) -> None:
    settings = make_settings(registry_root, api_token="s3cret", require_token_for_scoring=True)
    with serve(create_app(settings)) as live:
        with connect(live.ws) as anonymous:
            assert closed_with(anonymous) == (CloseCode.POLICY, MSG_TOKEN_REASON)
        with connect(live.ws + "?token=wrong") as wrong:
            assert closed_with(wrong) == (CloseCode.POLICY, MSG_TOKEN_REASON)
        with connect(live.ws + "?token=s3cret") as by_query:
            assert receive(by_query)["type"] == "ready"
        with connect(live.ws, additional_headers={"Authorization": "Bearer s3cret"}) as by_header:
            assert receive(by_header)["type"] == "ready"


def test_ten_seconds_of_the_simulated_cine_reach_good_on_the_shipped_model(shared_server: LiveServer) -> None:
    """Issue #14: a sonographer streaming the model's own anatomy sees `good`, not a session of ADJUST."""
    from usqa.service.simulator.cine import simulate_cine

    frames = [f.image for f in simulate_cine("transrectal_prostate", 300, seed=5)]
    verdicts: list[str] = []

    def on_message(message: dict[str, Any], _: float | None) -> None:
        if message["type"] == "result":
            verdicts.append(message["verdict"])

    report = asyncio.run(stream_frames(shared_server.ws, frames, fps=30, on_message=on_message))
    assert report.summary is not None and len(verdicts) >= 100
    assert verdicts.count("good") >= len(verdicts) // 2, {v: verdicts.count(v) for v in set(verdicts)}
