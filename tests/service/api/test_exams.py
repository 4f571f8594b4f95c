"""Several exams served at once (issue #27): each model chosen per request and per stream, listed by GET
/models, hot-swapped on its own while the others keep scoring, and switched mid-stream by a hello."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.support.scope import synthetic_frames
from usqa.client import Client, ScanRefused
from usqa.client.stream import stream_frames
from usqa.contracts.protocol import CloseCode
from usqa.service.api import create_app
from usqa.service.registry import CHAMPION, ModelRegistry
from usqa.service.simulator import simulate_cine

from ..conftest import FIXTURE_MODEL_NAME, MODEL_NAME, make_settings, republish, serve

TOKEN = "exams-test-token-0123456789"
NAMES = ("black", "white", "noise", "checkerboard")  # synthetic_frames, in order


def two_exams(registry_root: Path) -> Any:
    return make_settings(registry_root, model_names=(FIXTURE_MODEL_NAME,), api_token=TOKEN)


def cine(frames: int = 30) -> list[np.ndarray]:
    return [f.image for f in simulate_cine("transrectal_prostate", frames, seed=2, mix="standard")]


def test_two_exams_are_listed_and_each_is_chosen_per_request_and_per_stream(registry_root: Path) -> None:
    frames = cine()
    with serve(create_app(two_exams(registry_root))) as live:
        listing = httpx.get(f"{live.http}/models").json()
        assert listing["default"] == MODEL_NAME
        assert [m["name"] for m in listing["models"]] == [MODEL_NAME, FIXTURE_MODEL_NAME]
        assert all(m["state"] == "serving" and m["version"] >= 1 and m["card"] for m in listing["models"])
        for name in (MODEL_NAME, FIXTURE_MODEL_NAME):
            with Client(live.http, model=name) as client:
                assert client.assess(frames[0]).response["model"]["name"] == name
                seen: list[str] = []
                for verdict in client.scan(frames[:10]):
                    seen.append(verdict.message["model"]["name"])
                assert seen == [name] * 10
        png = _png(frames[0])
        assert httpx.post(f"{live.http}/assess", content=png).json()["model"]["name"] == MODEL_NAME
        unknown = httpx.post(f"{live.http}/assess?model=usqa-knee", content=png)
        assert unknown.status_code == 404 and unknown.json()["code"] == "model_not_served"
        assert "usqa-knee" in unknown.json()["detail"] and FIXTURE_MODEL_NAME in unknown.json()["detail"]
        knee = Client(live.http, model="usqa-knee", retries=0)
        with pytest.raises(ScanRefused, match="not served") as refused, knee:
            list(knee.scan(frames[:1]))
        assert refused.value.close_code == CloseCode.POLICY and "usqa-knee" in refused.value.close_reason


def test_one_exam_is_hot_swapped_while_the_other_keeps_scoring(registry_root: Path) -> None:
    frames = cine(60)
    registry = ModelRegistry(registry_root)
    with serve(create_app(two_exams(registry_root))) as live:
        before = {m["name"]: m["version"] for m in httpx.get(f"{live.http}/models").json()["models"]}
        results: dict[str, Any] = {}

        def stream() -> None:
            results["report"] = asyncio.run(stream_frames(live.ws, frames, fps=30.0))

        streaming = threading.Thread(target=stream)
        streaming.start()
        version = republish(registry, FIXTURE_MODEL_NAME)
        promoted = httpx.post(
            f"{live.http}/models/{FIXTURE_MODEL_NAME}/promote",
            json={"ref": str(version)},
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=30,
        )
        streaming.join(timeout=60)
        assert promoted.status_code == 200 and promoted.json()["served_version"] == version
        after = {m["name"]: m["version"] for m in httpx.get(f"{live.http}/models").json()["models"]}
        report = results["report"]
    assert after == {MODEL_NAME: before[MODEL_NAME], FIXTURE_MODEL_NAME: version}
    # The default exam's stream never noticed: every frame scored by its own model, none swapped.
    assert report.results == len(frames) and report.errors == 0 and report.swaps == []
    assert report.versions == [before[MODEL_NAME]]


def test_a_hello_switches_the_stream_to_another_exam(registry_root: Path) -> None:
    frames = cine(20)
    messages: list[dict[str, Any]] = []
    with (
        serve(create_app(two_exams(registry_root))) as live,
        Client(live.http) as client,
        client.open_scan() as (ws, ready),
    ):
        assert ready["model"]["name"] == MODEL_NAME
        ws.send(_png(frames[0]))
        messages.append(_next(ws, "result"))
        ws.send(json.dumps({"type": "hello", "model": FIXTURE_MODEL_NAME}))
        swap = _next(ws, "model_swap")
        ws.send(_png(frames[1]))
        messages.append(_next(ws, "result"))
        ws.send('{"type": "hello", "model": "usqa-knee"}')
        error = _next(ws, "error")
    assert messages[0]["model"]["name"] == MODEL_NAME and messages[1]["model"]["name"] == FIXTURE_MODEL_NAME
    assert swap["from_model"] == MODEL_NAME and swap["model"]["name"] == FIXTURE_MODEL_NAME
    assert error["code"] == "bad_hello" and "usqa-knee" in error["message"]


def _png(frame: np.ndarray) -> bytes:
    import cv2

    return bytes(cv2.imencode(".png", frame)[1].tobytes())


def _next(ws: Any, kind: str) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = json.loads(ws.recv(timeout=10))
        if message["type"] == kind:
            return message


def test_a_frame_out_of_scope_for_one_exam_names_the_exam_it_looks_like(registry_root: Path) -> None:
    """A second exam whose scope gate admits what the prostate model refuses (the shipped graphs published again
    under another name with the gate opened wide): the prostate model's out-of-scope frames name it."""
    registry = ModelRegistry(registry_root)
    champion = registry.load(MODEL_NAME, CHAMPION)
    assert champion.manifest.ood is not None
    wide = champion.manifest.model_copy(
        update={
            "name": "usqa-wide-gate",
            "version": 0,
            "files": {},
            "ood": champion.manifest.ood.model_copy(update={"threshold": 1e12}),
        }
    )
    registry.publish(wide, {f: champion.path / f for f in champion.manifest.files}, alias=CHAMPION)
    noise = next(image for image, name in zip(synthetic_frames(), NAMES, strict=True) if name == "noise")
    png = _png(noise)
    settings = make_settings(registry_root, model_names=("usqa-wide-gate",))
    with serve(create_app(settings)) as live, Client(live.http) as client:
        frame = httpx.post(f"{live.http}/assess", content=png).json()["frames"][0]
        assert frame["verdict"] == "out_of_scope" and frame["looks_like"] == "usqa-wide-gate"
        (streamed,) = list(client.scan([png]))
        assert streamed.message["looks_like"] == "usqa-wide-gate"
        wide_frame = httpx.post(f"{live.http}/assess?model=usqa-wide-gate", content=png).json()["frames"][0]
        assert wide_frame["verdict"] != "out_of_scope" and wide_frame["looks_like"] is None
    with serve(create_app(make_settings(registry_root))) as alone:  # one exam: no one to name
        assert httpx.post(f"{alone.http}/assess", content=png).json()["frames"][0]["looks_like"] is None
