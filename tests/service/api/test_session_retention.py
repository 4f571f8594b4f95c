"""Patient data over HTTP: DELETE /sessions/{id} and retention remove a session from memory and disk; every
access to a session is a line of the audit log."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from usqa.client.stream import stream_frames
from usqa.service.api import create_app
from usqa.service.api.audit import AUDIT_LOGGER
from usqa.service.api.errors import SESSION_NOT_FOUND, TOKEN_MISSING

from ..conftest import FIXTURE_MODEL_NAME, LiveServer, frame_of_level, make_settings, serve

TOKEN = "retention-test-token"


def streamed_session(live: LiveServer, frames: int = 3) -> str:
    images = [frame_of_level(150, (32, 32), seed=i) for i in range(frames)]
    report = asyncio.run(stream_frames(live.ws, images, fps=30))
    assert report.summary is not None
    return str(report.summary["session"])


def wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_delete_removes_the_report_captures_and_folder(registry_root: Path, tmp_path: Path) -> None:
    folder = tmp_path / "sessions"
    settings = make_settings(
        registry_root, model_name=FIXTURE_MODEL_NAME, sessions_dir=folder, api_token=TOKEN
    )
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with serve(create_app(settings)) as live:
        session, other = streamed_session(live), streamed_session(live)
        wait_for(lambda: (folder / session / "report.json").exists() and (folder / other).is_dir())
        url = f"{live.http}/sessions/{session}"
        refused = httpx.delete(url)  # the token rules of GET
        assert refused.status_code == 401 and refused.json()["detail"] == TOKEN_MISSING
        assert httpx.get(url, headers=auth).status_code == 200
        deleted = httpx.delete(url, headers=auth)
        assert deleted.status_code == 204 and deleted.content == b""
        for path in (url, f"{url}/captures/0.png"):
            assert httpx.get(path, headers=auth).status_code == 404
        assert not (folder / session).exists() and (folder / other).is_dir()
        listed = httpx.get(f"{live.http}/sessions", headers=auth).json()["sessions"]
        assert [s["session"] for s in listed] == [other]
        again = httpx.delete(url, headers=auth)
        assert again.status_code == 404
        assert again.json() == {
            "detail": SESSION_NOT_FOUND.format(session=session),
            "code": "session_not_found",
        }
        assert httpx.delete(f"{live.http}/sessions/..", headers=auth).status_code in (404, 405)
        assert folder.is_dir()


def test_sessions_expire_after_the_retention(
    registry_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "sessions"
    settings = make_settings(
        registry_root, model_name=FIXTURE_MODEL_NAME, sessions_dir=folder, session_retention_s=1.0
    )
    with serve(create_app(settings)) as live:
        session = streamed_session(live)
        wait_for(lambda: (folder / session / "report.json").exists())
        with caplog.at_level(logging.INFO, logger=AUDIT_LOGGER):
            assert httpx.get(f"{live.http}/sessions/{session}").status_code == 200
        (read,) = [r for r in caplog.records if r.name == AUDIT_LOGGER]
        assert read.audit["token"] is False and "token=no" in read.getMessage()  # no token configured
        # Nobody reads or streams: the periodic sweep removes the folder, and memory forgets it.
        wait_for(lambda: not (folder / session).exists(), timeout_s=10.0)
        assert httpx.get(f"{live.http}/sessions/{session}").status_code == 404
        assert httpx.get(f"{live.http}/sessions").json()["sessions"] == []


def test_every_access_is_audited_without_the_token_or_pixels(
    registry_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(registry_root, model_name=FIXTURE_MODEL_NAME, api_token=TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with serve(create_app(settings)) as live:
        session = streamed_session(live)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger=AUDIT_LOGGER):
            base = f"{live.http}/sessions"
            assert httpx.get(base, headers=auth).status_code == 200
            assert httpx.get(f"{base}/{session}", headers=auth).status_code == 200
            png = httpx.get(f"{base}/{session}/captures/0.png", headers=auth)
            assert png.status_code == 200
            assert httpx.get(f"{base}/{session}/captures/9.png", headers=auth).status_code == 404
            assert httpx.get(f"{base}/nope", headers=auth).status_code == 404
            assert httpx.delete(f"{base}/{session}", headers=auth).status_code == 204
    records = [r for r in caplog.records if r.name == AUDIT_LOGGER]
    seen = [(r.audit["action"], r.audit["session"], r.audit["capture"], r.audit["outcome"]) for r in records]
    assert seen == [
        ("list_sessions", None, None, "ok"),
        ("read_report", session, None, "ok"),
        ("read_capture", session, 0, "ok"),
        ("read_capture", session, 9, "not_found"),
        ("read_report", "nope", None, "not_found"),
        ("delete_session", session, None, "ok"),
    ]
    for record in records:
        assert record.levelno == logging.INFO
        assert record.audit["client"].startswith("127.0.0.1:") and record.audit["token"] is True
        assert record.audit["at"].endswith("+00:00")
        line = record.getMessage()
        assert f"client={record.audit['client']}" in line and "token=yes" in line
        assert TOKEN not in line and len(line) < 300  # never the token, never pixels
