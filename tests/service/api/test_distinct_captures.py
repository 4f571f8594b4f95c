"""Distinct best frames (issue #26 item 1): a clip played in a loop gives its best frames once each."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np

from usqa.client.stream import stream_frames
from usqa.service.api import create_app
from usqa.service.simulator import simulate_cine

from ..conftest import FIXTURE_MODEL_NAME, make_settings, serve

CLIP_FRAMES = 120
FPS = 30.0
SECONDS = 20.0


def test_a_looped_clip_keeps_no_two_captures_with_the_same_pixels(registry_root: Path) -> None:
    """The issue's case: a 120-frame clip streamed in a loop for 20 s (each frame comes back every 4 s, past
    the capture spacing, with the same score). The fixture classifier scores a frame by its brightness, so
    the clip's frames score apart and a frame met again would displace a worse kept one."""
    clip = [f.image for f in simulate_cine("transrectal_prostate", CLIP_FRAMES, seed=3)]
    frames = [clip[i % CLIP_FRAMES] for i in range(int(FPS * SECONDS))]
    session: dict[str, Any] = {}

    def on_message(message: dict[str, Any], _: float | None) -> None:
        if message["type"] == "ready":
            session["id"] = message["session"]

    with serve(create_app(make_settings(registry_root, model_name=FIXTURE_MODEL_NAME))) as live:
        report = asyncio.run(stream_frames(live.ws, frames, fps=FPS, on_message=on_message))
        assert report.results > 0.9 * len(frames)
        captures = httpx.get(f"{live.http}/sessions/{session['id']}").json()["captures"]
        pngs = [httpx.get(f"{live.http}{c['url']}").content for c in captures]
    images = [cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE) for png in pngs]
    assert len(images) >= 2, captures
    for a, b in itertools.combinations(images, 2):
        assert a.shape != b.shape or not np.array_equal(a, b)
    # Each kept frame is a different frame of the clip, not one frame met on several loops.
    assert len({c["frame"] % CLIP_FRAMES for c in captures}) == len(captures)
