"""`usqa stream --device` against capture sources OpenCV opens here: an image sequence and a video file."""

from __future__ import annotations

import re
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from usqa.cli import main
from usqa.client.device import LatestFrameReader, crop_to_scan, open_device
from usqa.service.simulator.cine import simulate_cine

from ..service.conftest import LiveServer

SCREEN = (200, 280)  # a scanner's screen: the scan in the middle, text around it
SCAN_AT = (40, 70)


def screens(count: int, seed: int = 11) -> list[np.ndarray]:
    frames = []
    for frame in simulate_cine("transrectal_prostate", count, seed=seed):
        screen = np.zeros(SCREEN, np.uint8)
        y, x = SCAN_AT
        screen[y : y + 128, x : x + 128] = np.maximum(frame.image, 30)  # a bright scan region
        cv2.putText(screen, "MI 0.9 TIS 0.4", (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.4, 255, 1)
        frames.append(screen)
    return frames


@pytest.fixture(scope="module")
def image_sequence(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("capture")
    for i, screen in enumerate(screens(30)):
        cv2.imwrite(str(folder / f"screen_{i:03d}.png"), screen)
    return str(folder / "screen_%03d.png")


@pytest.fixture(scope="module")
def video_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("video") / "scanner.avi"
    height, width = SCREEN
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (width, height))
    assert writer.isOpened()
    for screen in screens(20):
        writer.write(cv2.cvtColor(screen, cv2.COLOR_GRAY2BGR))
    writer.release()
    return str(path)


def test_the_reader_keeps_only_the_newest_frame(image_sequence: str) -> None:
    reader = LatestFrameReader(open_device(image_sequence), fps=None).start()
    try:
        deadline = time.monotonic() + 10
        while reader.read < 30 and time.monotonic() < deadline:
            time.sleep(0.01)
        newest = reader.take(timeout=1)
        assert newest is not None and newest.index == 29 and newest.image.shape == SCREEN
        assert reader.take(timeout=1) is None  # the sequence ended; the older 29 were never queued
    finally:
        reader.stop()


def test_auto_crop_cuts_the_screen_to_the_scan() -> None:
    cropped = crop_to_scan(screens(1)[0])
    assert cropped.shape[0] <= 140 and cropped.shape[1] <= 140 and cropped.shape[0] >= 120


@pytest.mark.parametrize("source", ["image_sequence", "video_file"])
def test_usqa_stream_device_end_to_end(
    source: str,
    request: pytest.FixtureRequest,
    fixture_server: LiveServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    device = request.getfixturevalue(source)
    args = ["stream", "--device", device, "--url", fixture_server.ws, "--frames", "6", "--crop", "auto"]
    assert main([*args, "--fps", "50"]) == 0
    out = capsys.readouterr().out
    assert f"sent 6 frames at the service's pace from device {device}" in out
    assert '"dropped": 0' in out  # paced: the service never had to replace a frame
    assert "session report: http://" in out


def test_usqa_stream_device_stops_after_seconds_and_refuses_bad_devices(
    image_sequence: str, fixture_server: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["stream", "--device", image_sequence, "--url", fixture_server.ws, "--seconds", "0.3", "--raw"])
        == 0
    )
    found = re.search(r"^sent (\d+) frames", capsys.readouterr().out, re.MULTILINE)
    assert found is not None
    sent = int(found.group(1))
    assert 1 <= sent <= 30
    assert (
        main(["stream", "--device", str(Path("/nonexistent/none_%03d.png")), "--url", fixture_server.ws]) == 2
    )
    assert "cannot open capture device" in capsys.readouterr().err
    assert main(["stream", "--url", fixture_server.ws]) == 2
