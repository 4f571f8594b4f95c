"""Drift that means something (issue #26 item 7): the service-wide score index stays under the alarm on the
built-in demo cine and passes it on a cardiac echo; one stream's first frames publish nothing."""

from __future__ import annotations

import asyncio
import base64
import re
from pathlib import Path

import httpx
import numpy as np

from tests.support.scope import cardiac_echo
from usqa.client.stream import stream_frames
from usqa.service.api import create_app
from usqa.service.api.cine import demo_cine
from usqa.service.live.drift import ALARM_PSI, SERVICE_MIN_FRAMES

from ..conftest import make_settings, serve

RULES = Path(__file__).resolve().parents[3] / "docker" / "prometheus" / "rules.yml"


def score_psi(http: str) -> float | None:
    found = re.search(r"^usqa_score_drift_psi\{[^}]*\} (\S+)$", httpx.get(f"{http}/metrics").text, re.M)
    return None if found is None else float(found.group(1))


def drift_after(
    registry_root: Path, frames: list[bytes] | list[np.ndarray]
) -> tuple[float | None, float | None]:
    """The service-wide index after the first stream's first frames, and after all of `frames`."""
    with serve(create_app(make_settings(registry_root))) as live:
        asyncio.run(stream_frames(live.ws, frames[:100], fps=None))
        early = score_psi(live.http)
        asyncio.run(stream_frames(live.ws, frames, fps=None))
        return early, score_psi(live.http)


def test_no_alarm_on_the_demo_cine_and_one_on_a_cardiac_echo(registry_root: Path) -> None:
    cine = demo_cine("transrectal_prostate", 150)
    demo = [base64.b64decode(url.split(",", 1)[1]) for url in cine.frames] * 4  # replayed: 600 frames
    early, demo_psi = drift_after(registry_root, demo)
    assert early is None  # 100 scores: not published (SERVICE_MIN_FRAMES)
    assert demo_psi is not None and demo_psi < ALARM_PSI
    echo = cardiac_echo() * (SERVICE_MIN_FRAMES // 30 + 1)
    _, echo_psi = drift_after(registry_root, echo)
    assert echo_psi is not None and echo_psi > ALARM_PSI


def test_the_alert_rule_uses_the_alarm_level() -> None:
    assert f"usqa_score_drift_psi > {ALARM_PSI}" in RULES.read_text()
