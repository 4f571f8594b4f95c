"""Issue #27's first "Done when", on the two shipped models (models/: usqa-prostate and usqa-thyroid, `make
default-model`): one service serves both, its workers or its event loop running the stream frames; each is streamed to over /ws/scan and posted to over /assess; one is
hot-swapped while the other keeps scoring; and a frame of one exam's anatomy is called out of scope by the other,
with the hint naming the right exam.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from usqa.client import Client
from usqa.client.stream import stream_frames
from usqa.service.api import create_app
from usqa.service.registry import ModelRegistry
from usqa.service.simulator import simulate_cine

from ..conftest import make_settings, republish, serve

REPO_MODELS = Path(__file__).resolve().parents[3] / "models"
PROSTATE, THYROID = "usqa-prostate", "usqa-thyroid"
ANATOMY = {PROSTATE: "transrectal_prostate", THYROID: "linear_thyroid"}
TOKEN = "shipped-exams-token-0123456789"


@pytest.fixture
def shipped(tmp_path: Path) -> Path:
    """A private copy of the shipped registry: the hot swap publishes into it, never into the checkout."""
    root = tmp_path / "models"
    shutil.copytree(REPO_MODELS, root)
    return root


def _cine(name: str, frames: int, seed: int = 11) -> list[np.ndarray]:
    return [f.image for f in simulate_cine(ANATOMY[name], frames, seed=seed)]


def _png(frame: np.ndarray) -> bytes:
    return bytes(cv2.imencode(".png", frame)[1].tobytes())


# Both ways a service runs stream frames: in its inference workers, and on its event loop (a service on one core).
@pytest.mark.parametrize("on_loop", [False, True], ids=["workers", "frames-on-loop"])
def test_one_service_serves_both_shipped_exams_swaps_one_and_names_the_other(
    shipped: Path, on_loop: bool
) -> None:
    settings = make_settings(shipped, model_names=("*",), api_token=TOKEN, stream_frames_on_loop=on_loop)
    cines = {name: _cine(name, 40) for name in ANATOMY}
    with serve(create_app(settings)) as live:
        assert httpx.get(f"{live.http}/readyz", timeout=30).json()["frames_on_loop"] is on_loop
        with Client(live.http) as client:
            listing = client.exams()  # GET /models
        assert listing["default"] == PROSTATE
        assert sorted(m["name"] for m in listing["models"]) == [PROSTATE, THYROID]
        assert all(m["state"] == "serving" for m in listing["models"])
        before = {m["name"]: m["version"] for m in listing["models"]}

        # Each exam over /assess and over /ws/scan, with frames of its own anatomy: in scope, its own model.
        for name, frames in cines.items():
            with Client(live.http, model=name) as client:
                assessed = client.assess(frames[0]).response
                assert (
                    assessed["model"]["name"] == name and assessed["frames"][0]["verdict"] != "out_of_scope"
                )
                verdicts = [v.message for v in client.scan(frames[:20])]
            assert {m["model"]["name"] for m in verdicts} == {name}
            assert Counter(m["verdict"] for m in verdicts)["out_of_scope"] <= 2

        # The other exam's anatomy: out of scope, and the hint names the exam that takes it.
        for name, other in ((PROSTATE, THYROID), (THYROID, PROSTATE)):
            png = _png(cines[other][0])
            frame = httpx.post(f"{live.http}/assess?model={name}", content=png, timeout=30).json()["frames"][
                0
            ]
            assert frame["verdict"] == "out_of_scope" and frame["looks_like"] == other
            with Client(live.http, model=name) as client:
                streamed = [v.message for v in client.scan([_png(f) for f in cines[other][:10]])]
            assert all(m["verdict"] == "out_of_scope" for m in streamed)
            assert Counter(m["looks_like"] for m in streamed)[other] >= 8

        # The thyroid exam is hot-swapped while a prostate stream keeps scoring.
        results: dict[str, Any] = {}

        def stream() -> None:
            results["report"] = asyncio.run(stream_frames(live.ws, cines[PROSTATE] * 2, fps=30.0))

        streaming = threading.Thread(target=stream)
        streaming.start()
        version = republish(ModelRegistry(shipped), THYROID)
        promoted = httpx.post(
            f"{live.http}/models/{THYROID}/promote",
            json={"ref": str(version)},
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=60,
        )
        streaming.join(timeout=60)
        assert promoted.status_code == 200 and promoted.json()["served_version"] == version
        after = {
            m["name"]: m["version"] for m in httpx.get(f"{live.http}/models", timeout=30).json()["models"]
        }
        with Client(live.http, model=THYROID) as client:
            swapped = client.assess(cines[THYROID][1]).response
    assert after == {PROSTATE: before[PROSTATE], THYROID: version}
    assert swapped["model"] == {**swapped["model"], "name": THYROID, "version": version}
    report = results["report"]
    assert report.results == 2 * len(cines[PROSTATE]) and report.errors == 0 and report.swaps == []
    assert report.versions == [before[PROSTATE]]
