"""Session reports over HTTP against real servers: a DICOM cine's UIDs, captures, bad ids, tokens, eviction."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from usqa.cli import main
from usqa.client.stream import stream_frames
from usqa.service.api import create_app
from usqa.service.api.errors import CAPTURE_NOT_FOUND, SESSION_NOT_FOUND, TOKEN_INVALID, TOKEN_MISSING

from ..conftest import FIXTURE_MODEL_NAME, LiveServer, dicom_bytes, frame_of_level, make_settings, serve

TOKEN = "sessions-test-token"


def cine_with_uids(path: Path, frames: list[np.ndarray]) -> dict[str, str]:
    dataset = pydicom.dcmread(io.BytesIO(dicom_bytes(frames)))
    uids = {
        "study_instance_uid": generate_uid(),
        "series_instance_uid": generate_uid(),
        "sop_instance_uid": str(dataset.SOPInstanceUID),
    }
    dataset.StudyInstanceUID = uids["study_instance_uid"]
    dataset.SeriesInstanceUID = uids["series_instance_uid"]
    dataset.save_as(path, enforce_file_format=True)
    return uids


def session_of(out: str) -> str:
    found = re.search(r"session report: http://\S+/sessions/(\w+)", out)
    assert found is not None, out
    return found.group(1)


@pytest.fixture(scope="module")
def spaced_server(source_registry: Path) -> Iterator[LiveServer]:
    """The fixture classifier (bright frames score high) with captures every frame apart."""
    settings = make_settings(source_registry, model_name=FIXTURE_MODEL_NAME, capture_spacing_s=0.0)
    with serve(create_app(settings)) as live:
        yield live


def test_the_report_of_a_dicom_cine_carries_its_uids_and_captures(
    spaced_server: LiveServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    levels = [30, 60, 200, 90, 180, 120, 45, 150]
    cine = tmp_path / "cine.dcm"
    uids = cine_with_uids(cine, [frame_of_level(v, shape=(48, 64), seed=i) for i, v in enumerate(levels)])
    assert main(["stream", str(cine), "--url", spaced_server.ws, "--fps", "20", "--quiet"]) == 0
    session = session_of(capsys.readouterr().out)
    report = httpx.get(f"{spaced_server.http}/sessions/{session}").json()
    assert report["status"] == "finished" and report["dicom"] == [uids]
    assert report["frames"]["received"] == 8
    assert report["frames"]["scored"] + report["frames"]["dropped"] == 8
    assert report["model_versions"] == [1] and report["summary_text"].startswith("Scan of 0:0")
    assert set(report["verdict_seconds"]) == {"good", "adjust", "no_signal", "out_of_scope"}
    captures = report["captures"]
    assert 1 <= len(captures) <= 6
    assert [c["score"] for c in captures] == sorted((c["score"] for c in captures), reverse=True)
    png = httpx.get(f"{spaced_server.http}{captures[0]['url']}")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    image = cv2.imdecode(np.frombuffer(png.content, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert image.shape == (48, 64) and image.mean() > 100  # the brightest frames score best here
    listing = httpx.get(f"{spaced_server.http}/sessions").json()["sessions"]
    assert session in [s["session"] for s in listing]


def test_results_say_when_the_captures_changed_and_the_last_word_is_the_reports(
    spaced_server: LiveServer,
) -> None:
    import asyncio

    levels = [40, 160, 90, 220, 130, 60, 190, 110, 250, 70]
    frames = [frame_of_level(v, (32, 32), seed=i) for i, v in enumerate(levels)]
    changes: list[tuple[int, list[int]]] = []

    def on_message(message: dict[str, Any], _: float | None) -> None:
        if message["type"] == "result" and message["captured"] is not None:
            changes.append((message["seq"], message["captured"]))

    report = asyncio.run(stream_frames(spaced_server.ws, frames, fps=20, on_message=on_message))
    assert report.summary is not None and changes
    # A result names its own frame among the kept ones whenever it says the captures changed.
    assert all(seq in captured for seq, captured in changes)
    session = httpx.get(f"{spaced_server.http}/sessions/{report.summary['session']}").json()
    assert [c["frame"] for c in session["captures"]] == changes[-1][1]


def test_unknown_sessions_and_captures_are_404(spaced_server: LiveServer) -> None:
    http = spaced_server.http
    missing = httpx.get(f"{http}/sessions/nope")
    assert missing.status_code == 404
    assert missing.json() == {"detail": SESSION_NOT_FOUND.format(session="nope"), "code": "session_not_found"}
    long_id = "x" * 5000
    assert httpx.get(f"{http}/sessions/{long_id}/captures/0.png").status_code == 404
    report = httpx.get(f"{http}/sessions").json()["sessions"]
    if report:  # a session of this module's other tests: an out-of-range and a malformed rank
        session = report[0]["session"]
        count = report[0]["captures"]
        answer = httpx.get(f"{http}/sessions/{session}/captures/{count}.png")
        assert answer.status_code == 404
        assert answer.json()["detail"] == CAPTURE_NOT_FOUND.format(rank=count, session=session, count=count)
        assert httpx.get(f"{http}/sessions/{session}/captures/-1.png").status_code == 404
    bad_rank = httpx.get(f"{http}/sessions/nope/captures/first.png")
    assert bad_rank.status_code == 422 and bad_rank.json()["code"] == "invalid_request"


def test_session_routes_need_the_token_when_one_is_configured(registry_root: Path) -> None:
    # Scoring stays open (require_token_for_scoring is off); the images do not.
    settings = make_settings(registry_root, model_name=FIXTURE_MODEL_NAME, api_token=TOKEN)
    with serve(create_app(settings)) as live:
        frames = [frame_of_level(150, (32, 32), seed=i) for i in range(3)]
        import asyncio

        report = asyncio.run(stream_frames(live.ws, frames, fps=30))
        assert report.summary is not None
        session = report.summary["session"]
        paths = ["/sessions", f"/sessions/{session}", f"/sessions/{session}/captures/0.png", "/sessions/nope"]
        for path in paths:
            for headers, code, detail in [
                ({}, "token_missing", TOKEN_MISSING),
                ({"Authorization": "Bearer wrong"}, "token_invalid", TOKEN_INVALID),
            ]:
                answer = httpx.get(f"{live.http}{path}", headers=headers)
                assert answer.status_code == 401, path
                assert answer.json() == {"detail": detail, "code": code}
                assert answer.headers["www-authenticate"] == "Bearer"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert httpx.get(f"{live.http}/sessions/{session}", headers=auth).status_code == 200
        assert httpx.get(f"{live.http}/sessions/{session}/captures/0.png", headers=auth).status_code == 200
        assert httpx.get(f"{live.http}/sessions/nope", headers=auth).status_code == 404


def test_finished_sessions_beyond_the_limit_are_evicted(registry_root: Path, tmp_path: Path) -> None:
    import asyncio

    folder = tmp_path / "archive"
    settings = make_settings(
        registry_root, model_name=FIXTURE_MODEL_NAME, max_stored_sessions=2, sessions_dir=folder
    )
    with serve(create_app(settings)) as live:
        sessions = []
        for i in range(4):
            report = asyncio.run(stream_frames(live.ws, [frame_of_level(150, (24, 24), seed=i)], fps=30))
            assert report.summary is not None
            sessions.append(report.summary["session"])
        listed = [s["session"] for s in httpx.get(f"{live.http}/sessions").json()["sessions"]]
        assert listed == sessions[:1:-1]
        assert httpx.get(f"{live.http}/sessions/{sessions[0]}").status_code == 404
    # Every finished session was archived, evicted from memory or not.
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == sorted(sessions)
