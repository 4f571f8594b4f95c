"""Issue #14 through the real routes on the shipped model: frames that are not its task come back from
/assess as `no_signal` or `out_of_scope` and never amenable, and streaming the cardiac echo moves the
service's score drift (`usqa_score_drift_psi`) above the alarm level."""

from __future__ import annotations

import asyncio
from pathlib import Path

import cv2
import httpx
import pydicom.examples

from tests.support.scope import cardiac_echo, synthetic_frames
from usqa.client.stream import stream_frames
from usqa.service.api import create_app
from usqa.service.live.drift import ALARM_PSI

from ..conftest import MODEL_NAME, make_settings, serve, served_version
from .test_ops import metric

NOT_THE_TASK = {"no_signal", "out_of_scope"}


def test_foreign_frames_are_out_of_scope_on_assess_and_the_echo_moves_drift(
    registry_root: Path, source_registry: Path
) -> None:
    # A 100-score window: the service-wide index is published once it is full (30 + 90 scores here).
    with serve(create_app(make_settings(registry_root, drift_window=100))) as live:
        for image, name in zip(synthetic_frames(), ("black", "white", "noise", "checkerboard"), strict=True):
            png = cv2.imencode(".png", image)[1].tobytes()
            answer = httpx.post(f"{live.http}/assess", content=png, headers={"content-type": "image/png"})
            frame = answer.json()["frames"][0]
            assert frame["verdict"] in NOT_THE_TASK and frame["amenable"] is False, (name, frame)
        echo = pydicom.examples.get_path("ybr_color").read_bytes()
        answer = httpx.post(
            f"{live.http}/assess", content=echo, headers={"content-type": "application/dicom"}, timeout=30
        )
        frames = answer.json()["frames"]
        assert len(frames) == 30
        assert all(f["verdict"] in NOT_THE_TASK and f["amenable"] is False for f in frames), frames
        report = asyncio.run(stream_frames(live.ws, cardiac_echo() * 3, fps=None))
        assert report.summary is not None and report.results >= 30
        text = httpx.get(f"{live.http}/metrics").text
    model = {"model": MODEL_NAME, "version": str(served_version(source_registry))}
    assert metric(text, "usqa_score_drift_psi", **model) > ALARM_PSI
