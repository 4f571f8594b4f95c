"""Uploads never queue in front of stream frames (issue 28): a slow /assess decode runs in the decode lane, so
with a single inference worker a stream keeps getting its results at once."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from usqa.service.api import create_app
from usqa.service.frames import CorruptFrameError
from usqa.service.inference import scoring

from ..conftest import FIXTURE_MODEL_NAME, LiveServer, frame_of_level, make_settings, png_bytes, serve

SLOW_BODY = bytes(128) + b"DICM" + b"slow upload"  # sniffed as DICOM: decoded in the lane
SLOW_S = 3.0
RECV_TIMEOUT_S = 10.0


@pytest.fixture
def one_worker(source_registry: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    decode = scoring.decode_bytes

    def slow_for_the_marked_upload(data: bytes, *args: Any, **kwargs: Any) -> Any:
        if data == SLOW_BODY:  # a hostile file that takes seconds to decode
            time.sleep(SLOW_S)
            raise CorruptFrameError("corrupt data: slow on purpose")
        return decode(data, *args, **kwargs)

    monkeypatch.setattr(scoring, "decode_bytes", slow_for_the_marked_upload)
    settings = make_settings(source_registry, model_name=FIXTURE_MODEL_NAME, inference_workers=1)
    with serve(create_app(settings)) as live:
        yield live


def test_a_slow_upload_does_not_hold_up_a_stream(one_worker: LiveServer) -> None:
    answers: list[int] = []
    uploads = [
        threading.Thread(
            target=lambda: answers.append(
                httpx.post(f"{one_worker.http}/assess", content=SLOW_BODY, timeout=30).status_code
            )
        )
        for _ in range(2)
    ]
    frame = png_bytes(frame_of_level(90, seed=1))
    waits: list[float] = []
    with connect(one_worker.ws) as ws:
        assert json.loads(ws.recv(timeout=RECV_TIMEOUT_S))["type"] == "ready"
        for upload in uploads:
            upload.start()
        time.sleep(0.3)  # the uploads are decoding now
        for _ in range(10):
            sent = time.perf_counter()
            ws.send(frame)
            while json.loads(ws.recv(timeout=RECV_TIMEOUT_S))["type"] != "result":
                pass
            waits.append(time.perf_counter() - sent)
        ws.send(json.dumps({"type": "end"}))
    for upload in uploads:
        upload.join()
    assert answers == [400, 400]
    assert max(waits) < 1.0, f"a stream frame waited {max(waits):.2f} s behind an upload"
