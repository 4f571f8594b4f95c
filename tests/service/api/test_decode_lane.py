"""Uploads never queue in front of stream frames (issue 28): a DICOM that takes seconds to decode (8 JPEG 2000
frames of 4096x4096, the whole decoded-pixel budget) decodes in the decode lane, a process of its own, so with
a single inference worker a stream keeps getting its results at once."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from tests.support import hostile_dicom
from usqa.service.api import create_app

from ..conftest import FIXTURE_MODEL_NAME, LiveServer, frame_of_level, make_settings, png_bytes, serve

RECV_TIMEOUT_S = 10.0


@pytest.fixture
def one_worker(source_registry: Path) -> Iterator[LiveServer]:
    settings = make_settings(source_registry, model_name=FIXTURE_MODEL_NAME, inference_workers=1)
    with serve(create_app(settings)) as live:
        yield live


def test_a_slow_upload_does_not_hold_up_a_stream(one_worker: LiveServer) -> None:
    slow = hostile_dicom.zero_j2k_frames(8, 4096)
    answers: list[int] = []

    def upload() -> None:
        response = httpx.post(
            f"{one_worker.http}/assess",
            content=slow,
            headers={"Content-Type": "application/dicom"},
            timeout=60,
        )
        answers.append(response.status_code)

    uploads = [threading.Thread(target=upload) for _ in range(2)]
    frame = png_bytes(frame_of_level(90, seed=1))
    waits: list[float] = []
    with connect(one_worker.ws) as ws:
        assert json.loads(ws.recv(timeout=RECV_TIMEOUT_S))["type"] == "ready"
        for thread in uploads:
            thread.start()
        time.sleep(1.0)  # the uploads are decoding now
        while any(thread.is_alive() for thread in uploads) or len(waits) < 10:
            sent = time.perf_counter()
            ws.send(frame)
            while json.loads(ws.recv(timeout=RECV_TIMEOUT_S))["type"] != "result":
                pass
            waits.append(time.perf_counter() - sent)
            time.sleep(0.1)
        ws.send(json.dumps({"type": "end"}))
    for thread in uploads:
        thread.join()
    assert answers == [200, 200]
    assert max(waits) < 0.5, f"a stream frame waited {max(waits):.2f} s beside the uploads"
