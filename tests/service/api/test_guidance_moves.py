"""Guidance that moves (issue #25): the shipped model's certified line calls frames the task model cannot be
trusted on `adjust`, with a reason, on a degraded simulated sweep and on the live page's demo cine."""

from __future__ import annotations

import base64
from collections import Counter
from pathlib import Path

import pytest

from usqa.client import Client
from usqa.service.api import create_app
from usqa.service.api.cine import demo_cine
from usqa.service.registry import CHAMPION, ModelRegistry
from usqa.service.registry.pass_line import pass_line
from usqa.service.simulator import write_dataset

from ..conftest import MODEL_NAME, SHIPPED_REGISTRY, make_settings, serve


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shipped") / "models"
    root.mkdir()
    (root / MODEL_NAME).symlink_to(SHIPPED_REGISTRY / MODEL_NAME, target_is_directory=True)
    return root


def verdicts(root: Path, frames: list[Path] | list[bytes]) -> tuple[Counter[str], Counter[str]]:
    """(each frame by itself, as /assess judges it; the stream's guidance, as /ws/scan says it), as
    'verdict/reason' counts."""
    with serve(create_app(make_settings(root))) as live, Client(live.http) as client:
        judged = Counter(
            f"{v.verdict}/{v.message['reason']}" for f in frames for v in client.assess(f).frames
        )
        streamed = Counter(f"{v.verdict}/{v.message['reason']}" for v in client.scan(frames))
    assert sum(streamed.values()) == len(frames)
    return judged, streamed


def test_the_shipped_model_is_certified(shipped: Path) -> None:
    manifest = ModelRegistry(shipped).load(MODEL_NAME, CHAMPION).manifest
    line = pass_line(manifest)
    assert line.certified, line.promise
    assert manifest.certification is not None and manifest.certification.alpha == 0.02


def test_a_degraded_sweep_gets_good_and_adjust_with_reasons(shipped: Path, tmp_path: Path) -> None:
    # The sweep: usqa simulate --frames 300 --subjects 3 --seed 17 --degraded-fraction 0.5
    data = tmp_path / "sweep"
    write_dataset(data, frames=300, subjects=3, seed=17, degraded_fraction=0.5, workers=1)
    judged, streamed = verdicts(shipped, sorted((data / "frames").glob("*.png")))
    for counts in (judged, streamed):
        assert counts["good/amenable"] > 0 and counts["adjust/low_score"] > 0, counts


def test_the_demo_cine_shows_both_verdicts_frame_by_frame_and_in_the_stream(shipped: Path) -> None:
    cine = demo_cine("transrectal_prostate", 150)  # the page's demo (GET /cine/demo), at its default length
    judged, streamed = verdicts(shipped, [base64.b64decode(url.split(",", 1)[1]) for url in cine.frames])
    for counts in (judged, streamed):
        assert counts["good/amenable"] > 0 and counts["adjust/low_score"] > 0, counts
