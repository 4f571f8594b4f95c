from __future__ import annotations

import base64
from pathlib import Path

import cv2
import httpx
import numpy as np

from usqa.service.api.schemas import CineFrames

from ..conftest import LiveServer, dicom_bytes, frame_of_level, png_bytes


def decode_frame(data_url: str) -> np.ndarray:
    assert data_url.startswith("data:image/png;base64,")
    return cv2.imdecode(
        np.frombuffer(base64.b64decode(data_url.split(",", 1)[1]), np.uint8), cv2.IMREAD_GRAYSCALE
    )


def test_the_demo_cine_is_a_simulated_sweep(shared_server: LiveServer) -> None:
    cine = CineFrames.model_validate(
        httpx.get(f"{shared_server.http}/cine/demo", params={"frames": 6}, timeout=60).json()
    )
    assert len(cine.frames) == 6 and cine.fps > 0 and "simulated" in cine.source
    first = decode_frame(cine.frames[0])
    assert first.shape == (cine.height, cine.width) and first.std() > 5


def test_a_dicom_cine_is_unpacked_into_frames(shared_server: LiveServer) -> None:
    frames = [frame_of_level(30 * (i + 1), shape=(40, 60), seed=i) for i in range(3)]
    response = httpx.post(
        f"{shared_server.http}/cine/frames",
        params={"name": "cine.dcm"},
        content=dicom_bytes(frames),
        headers={"content-type": "application/octet-stream"},
    )
    assert response.status_code == 200
    cine = CineFrames.model_validate(response.json())
    assert (cine.width, cine.height, len(cine.frames)) == (60, 40, 3)
    np.testing.assert_array_equal(decode_frame(cine.frames[1]), frames[1])


def test_a_video_is_unpacked_with_its_frame_rate(shared_server: LiveServer, tmp_path: Path) -> None:
    video = tmp_path / "sweep.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 12, (64, 48))
    for i in range(5):
        writer.write(cv2.cvtColor(frame_of_level(40 + 20 * i, shape=(48, 64), seed=i), cv2.COLOR_GRAY2BGR))
    writer.release()
    response = httpx.post(
        f"{shared_server.http}/cine/frames",
        files={"file": ("sweep.avi", video.read_bytes(), "video/x-msvideo")},
        params={"name": "sweep.avi"},
    )
    assert response.status_code == 200, response.text
    cine = CineFrames.model_validate(response.json())
    assert len(cine.frames) == 5 and cine.fps == 12 and (cine.width, cine.height) == (64, 48)


def test_unreadable_cines_are_refused_with_the_pipeline_message(shared_server: LiveServer) -> None:
    response = httpx.post(f"{shared_server.http}/cine/frames", params={"name": "notes.txt"}, content=b"hello")
    assert response.status_code == 415 and response.json()["code"] == "unsupported_format"
    single = httpx.post(
        f"{shared_server.http}/cine/frames", params={"name": "a.png"}, content=png_bytes(frame_of_level(9))
    )
    assert single.status_code == 200 and len(single.json()["frames"]) == 1
