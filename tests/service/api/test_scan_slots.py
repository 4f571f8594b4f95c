"""/ws/scan slots cannot be squatted (issue 28): a first-message deadline, an idle timeout that hellos do not
reset, and an Origin allow-list for browsers (same origin by default; no Origin is no browser)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from usqa.contracts.protocol import CloseCode
from usqa.service.api import create_app
from usqa.service.api.routes.scan import origin_allowed
from usqa.service.api.scan_messages import (
    MSG_FIRST_MESSAGE_REASON,
    MSG_IDLE_REASON,
    MSG_ORIGIN_REASON,
)

from ..conftest import FIXTURE_MODEL_NAME, LiveServer, frame_of_level, make_settings, png_bytes, serve

FIRST_MESSAGE_S = 0.5
IDLE_S = 1.0
RECV_TIMEOUT_S = 10.0


@pytest.fixture(scope="module")
def strict_server(source_registry: Path) -> Iterator[LiveServer]:
    settings = make_settings(
        source_registry,
        model_name=FIXTURE_MODEL_NAME,
        scan_first_message_s=FIRST_MESSAGE_S,
        scan_idle_timeout_s=IDLE_S,
        scan_allowed_origins=("https://viewer.example",),
    )
    with serve(create_app(settings)) as live:
        yield live


def closed(ws: ClientConnection) -> tuple[int | None, str, list[str]]:
    """Read until the server closes; the close code, reason and the message types seen before it."""
    seen: list[str] = []
    with pytest.raises(ConnectionClosed):
        for _ in range(100):
            seen.append(json.loads(ws.recv(timeout=RECV_TIMEOUT_S))["type"])
    return ws.close_code, ws.close_reason or "", seen


def test_a_silent_stream_is_closed_after_the_first_message_deadline(strict_server: LiveServer) -> None:
    started = time.monotonic()
    with connect(strict_server.ws) as ws:
        code, reason, seen = closed(ws)
    assert code == CloseCode.POLICY
    assert reason == MSG_FIRST_MESSAGE_REASON.format(seconds=FIRST_MESSAGE_S)
    assert seen[0] == "ready" and seen[-1] == "summary"
    assert FIRST_MESSAGE_S <= time.monotonic() - started < FIRST_MESSAGE_S + 2


def test_hellos_alone_do_not_hold_a_slot(strict_server: LiveServer) -> None:
    started = time.monotonic()
    with connect(strict_server.ws) as ws:
        hello = json.dumps({"type": "hello", "format": "encoded"})
        try:
            while time.monotonic() - started < IDLE_S + 2:
                ws.send(hello)
                time.sleep(0.2)
        except ConnectionClosed:
            pass
        assert ws.close_code == CloseCode.POLICY
        assert ws.close_reason == MSG_IDLE_REASON.format(seconds=IDLE_S)
    assert time.monotonic() - started < IDLE_S + 2


def test_frames_keep_a_stream_open_past_the_idle_timeout(strict_server: LiveServer) -> None:
    frame = png_bytes(frame_of_level(90, seed=3))
    with connect(strict_server.ws) as ws:
        assert json.loads(ws.recv(timeout=RECV_TIMEOUT_S))["type"] == "ready"
        started = time.monotonic()
        while time.monotonic() - started < IDLE_S * 2:
            ws.send(frame)
            while json.loads(ws.recv(timeout=RECV_TIMEOUT_S))["type"] != "result":
                pass
            time.sleep(IDLE_S / 4)
        ws.send(json.dumps({"type": "end"}))
        code, _, _ = closed(ws)
    assert code == CloseCode.NORMAL


@pytest.mark.parametrize(
    ("origin", "accepted"),
    [
        (None, True),  # not a browser
        ("https://viewer.example", True),  # listed
        ("https://evil.example", False),
        ("null", False),  # a sandboxed page or a file:// page
    ],
)
def test_a_foreign_origin_is_refused_unless_allowed(
    strict_server: LiveServer, origin: str | None, accepted: bool
) -> None:
    with connect(strict_server.ws, origin=origin) as ws:  # type: ignore[arg-type]
        if accepted:
            assert json.loads(ws.recv(timeout=RECV_TIMEOUT_S))["type"] == "ready"
            ws.send(json.dumps({"type": "end"}))
        else:
            code, reason, seen = closed(ws)
            assert (code, reason, seen) == (CloseCode.POLICY, MSG_ORIGIN_REASON, [])


def test_the_services_own_origin_is_allowed(strict_server: LiveServer) -> None:
    own = f"http://{strict_server.host}:{strict_server.port}"
    with connect(strict_server.ws, origin=own) as ws:  # type: ignore[arg-type]
        assert json.loads(ws.recv(timeout=RECV_TIMEOUT_S))["type"] == "ready"
        ws.send(json.dumps({"type": "end"}))


class _Headers:
    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers


@pytest.mark.parametrize(
    ("headers", "allowed", "expected"),
    [
        ({"host": "scanner.local:8000", "origin": "http://scanner.local:8000"}, (), True),
        ({"host": "scanner.local:8000", "origin": "http://scanner.local:8001"}, (), False),
        ({"host": "scanner.local:8000", "origin": "https://other"}, ("*",), True),
        ({"host": "scanner.local:8000", "origin": "HTTPS://Other/"}, ("https://other",), True),
        ({"host": "scanner.local:8000"}, (), True),
    ],
)
def test_origin_rules(headers: dict[str, str], allowed: tuple[str, ...], expected: bool) -> None:
    assert origin_allowed(_Headers(headers), allowed) is expected  # type: ignore[arg-type]
