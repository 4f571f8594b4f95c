"""Per-client limits on /ws/scan slots (issue 28): one client address holds at most USQA_SCAN_SLOTS_PER_CLIENT
streams (then 1013 with a reason naming the setting), other addresses keep being served, a closed stream gives
its slot back, loopback clients are not counted and 0 turns the limit off.

The test server trusts X-Forwarded-For from 127.0.0.1 (uvicorn's default), so a header stands in for a
client on another machine, exactly as behind a reverse proxy that uvicorn trusts.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.websockets import WebSocket
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from usqa.contracts.protocol import CloseCode
from usqa.service.api import create_app
from usqa.service.api.routes.scan import counted_client
from usqa.service.api.scan_messages import MSG_CLIENT_SESSIONS_REASON
from usqa.service.live.sessions import SessionLimiter

from ..conftest import FIXTURE_MODEL_NAME, LiveServer, make_settings, serve

PER_CLIENT = 2
RECV_TIMEOUT_S = 10.0
WARD_PC, OTHER_PC = "203.0.113.7", "203.0.113.8"


def _server(registry: Path, per_client: int) -> contextlib.AbstractContextManager[LiveServer]:
    settings = make_settings(registry, model_name=FIXTURE_MODEL_NAME, scan_slots_per_client=per_client)
    return serve(create_app(settings))


@pytest.fixture(scope="module")
def limited(source_registry: Path) -> Iterator[LiveServer]:
    with _server(source_registry, PER_CLIENT) as live:
        yield live


def _open(live: LiveServer, streams: contextlib.ExitStack, address: str | None) -> ClientConnection:
    headers = {"X-Forwarded-For": address} if address else {}
    return streams.enter_context(connect(live.ws, additional_headers=headers, open_timeout=RECV_TIMEOUT_S))


def _answer(ws: ClientConnection) -> tuple[str, int | None, str]:
    """("ready", None, "") for a served stream, ("closed", code, reason) for a refused one."""
    try:
        return json.loads(ws.recv(timeout=RECV_TIMEOUT_S))["type"], None, ""
    except ConnectionClosed:
        return "closed", ws.close_code, ws.close_reason or ""


def _all_slots_free(live: LiveServer) -> None:
    """Wait for the streams of an earlier test to be released (the server sees their close a moment later)."""
    limiter = live.app.state.service.sessions
    deadline = time.monotonic() + 5
    while limiter.open or limiter.by_client:
        assert time.monotonic() < deadline, f"{limiter.open} slots still taken"
        time.sleep(0.02)


def _refused_for_client(live: LiveServer) -> float:
    text = httpx.get(f"{live.http}/metrics", timeout=RECV_TIMEOUT_S).text
    for line in text.splitlines():
        if line.startswith('usqa_scan_sessions_refused_total{reason="client_limit"}'):
            return float(line.split()[-1])
    return 0.0


def test_one_address_holds_at_most_its_share_and_others_are_served(limited: LiveServer) -> None:
    _all_slots_free(limited)
    refused_before = _refused_for_client(limited)
    with contextlib.ExitStack() as streams:
        held = [_open(limited, streams, WARD_PC) for _ in range(PER_CLIENT)]
        assert [_answer(ws)[0] for ws in held] == ["ready"] * PER_CLIENT
        refused = _answer(_open(limited, streams, WARD_PC))
        assert refused == ("closed", CloseCode.TRY_AGAIN, MSG_CLIENT_SESSIONS_REASON.format(limit=PER_CLIENT))
        assert _answer(_open(limited, streams, OTHER_PC))[0] == "ready"
        # This host's own clients (the demo, a benchmark) are not counted against any address.
        assert [_answer(_open(limited, streams, None))[0] for _ in range(PER_CLIENT + 1)] == ["ready"] * 3
    assert _refused_for_client(limited) == refused_before + 1


def test_a_closed_stream_gives_its_slot_back_to_its_address(limited: LiveServer) -> None:
    _all_slots_free(limited)
    with contextlib.ExitStack() as streams:
        held = [_open(limited, streams, WARD_PC) for _ in range(PER_CLIENT)]
        assert [_answer(ws)[0] for ws in held] == ["ready"] * PER_CLIENT
        held[0].send(json.dumps({"type": "end"}))
        with contextlib.suppress(ConnectionClosed):
            while True:
                held[0].recv(timeout=RECV_TIMEOUT_S)
        deadline = time.monotonic() + 5
        while True:  # the server releases the slot when the stream's task ends, just after the close
            with contextlib.ExitStack() as attempt:
                kind, code, _ = _answer(_open(limited, attempt, WARD_PC))
            if kind == "ready":
                break
            assert code == CloseCode.TRY_AGAIN and time.monotonic() < deadline, "the slot never came back"
            time.sleep(0.05)


def test_zero_turns_the_per_client_limit_off(source_registry: Path) -> None:
    with _server(source_registry, 0) as live, contextlib.ExitStack() as streams:
        answers = [_answer(_open(live, streams, WARD_PC))[0] for _ in range(PER_CLIENT + 2)]
    assert answers == ["ready"] * (PER_CLIENT + 2)


def test_the_limiter_counts_per_address_and_releases() -> None:
    limiter = SessionLimiter(limit=3, per_client=2)
    assert limiter.acquire("a") is None and limiter.acquire("a") is None
    assert limiter.acquire("a") == "client_limit"
    assert limiter.acquire(None) is None  # not counted per client, still one of the three
    assert limiter.acquire("b") == "session_limit"
    limiter.release("a")
    assert limiter.acquire("b") is None and limiter.open == 3
    for client in ("a", "b", None):
        limiter.release(client)
    assert limiter.open == 0 and not limiter.by_client  # no entry left per address seen


class _Client:
    def __init__(self, host: str) -> None:
        self.client = type("Address", (), {"host": host})()


@pytest.mark.parametrize(
    ("host", "counted"),
    [
        ("127.0.0.1", None),
        ("127.0.0.2", None),
        ("::1", None),
        ("::ffff:127.0.0.1", None),
        ("10.1.2.3", "10.1.2.3"),
        ("::ffff:10.1.2.3", "10.1.2.3"),  # one address, however the socket spells it
        ("2001:db8::1", "2001:db8::1"),
        ("testclient", "testclient"),
    ],
)
def test_counted_client(host: str, counted: str | None) -> None:
    assert counted_client(_Client(host)) == counted  # type: ignore[arg-type]


def test_no_peer_address_is_not_counted() -> None:
    websocket = WebSocket({"type": "websocket", "headers": [], "client": None}, None, None)  # type: ignore[arg-type]
    assert counted_client(websocket) is None
