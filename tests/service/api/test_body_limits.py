"""Request bodies bounded server-wide (issue 28): a total in-flight budget across requests (503) and read
timeouts (408), so a client that stops half-way holds neither memory nor a connection for long."""

from __future__ import annotations

import asyncio
import json
import platform
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from usqa.service.api import body_limits, create_app
from usqa.service.api.body_limits import BODY_BUDGET_EXCEEDED, BODY_TIMEOUT, TRIM_AFTER_BYTES, BodyLimits
from usqa.service.heap import trim_heap

from ..conftest import FIXTURE_MODEL_NAME, LiveServer, frame_of_level, make_settings, png_bytes, serve

IDLE_S = 0.5
READ_S = 3.0
BUDGET = 100_000


@pytest.fixture(scope="module")
def bounded(source_registry: Path) -> Iterator[LiveServer]:
    settings = make_settings(
        source_registry,
        model_name=FIXTURE_MODEL_NAME,
        body_idle_timeout_s=IDLE_S,
        body_read_timeout_s=READ_S,
        max_inflight_body_bytes=BUDGET,
    )
    with serve(create_app(settings)) as live:
        yield live


def _start(live: LiveServer, declared: int, sent: bytes) -> socket.socket:
    """A POST /assess that declares `declared` bytes and sends only `sent`, then waits."""
    sock = socket.create_connection((live.host, live.port), timeout=10)
    head = (
        f"POST /assess HTTP/1.1\r\nHost: {live.host}\r\nContent-Type: application/octet-stream\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    ).encode()
    sock.sendall(head + sent)
    return sock


def _answer(sock: socket.socket) -> tuple[int, dict[str, str]]:
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_a_body_that_stops_half_way_is_answered_408(bounded: LiveServer) -> None:
    started = time.monotonic()
    with _start(bounded, 1000, b"x" * 10) as sock:
        status, payload = _answer(sock)
    assert (status, payload["code"]) == (408, "body_timeout")
    assert payload["detail"] == BODY_TIMEOUT.format(idle=IDLE_S, total=READ_S)
    assert time.monotonic() - started < IDLE_S + 2


def test_a_body_trickling_in_is_cut_at_the_read_timeout(bounded: LiveServer) -> None:
    started = time.monotonic()
    with _start(bounded, 10_000, b"x") as sock:
        answered = False
        while not answered and time.monotonic() - started < READ_S + 3:
            sock.sendall(b"x")  # one byte at a time, each well within the idle timeout
            answered = bool(select.select([sock], [], [], IDLE_S / 3)[0])
        status, payload = _answer(sock)
    assert (status, payload["code"]) == (408, "body_timeout")
    assert time.monotonic() - started < READ_S + 2


def test_bodies_past_the_total_budget_are_refused_until_it_frees(bounded: LiveServer) -> None:
    frame = png_bytes(frame_of_level(90, seed=2))
    assert len(frame) < BUDGET // 4
    with _start(bounded, 80_000, b"x" * 40_000) as holder:
        time.sleep(0.1)
        refused = httpx.post(f"{bounded.http}/assess", content=b"y" * 30_000, timeout=10)
        assert refused.status_code == 503 and refused.json()["code"] == "body_budget_exceeded"
        assert refused.json()["detail"] == BODY_BUDGET_EXCEEDED.format(retry=1)
        assert refused.headers["retry-after"] == "1"
        assert _answer(holder)[0] == 408  # the holder stalls; its bytes go back to the budget
    served = httpx.post(
        f"{bounded.http}/assess", content=frame, headers={"Content-Type": "image/png"}, timeout=10
    )
    assert served.status_code == 200


async def _post_through_limits(size: int) -> None:
    """A request with a body of `size` bytes (64 KiB messages) through BodyLimits to an app that reads it all."""
    chunk = 64 * 1024
    messages = [
        {"type": "http.request", "body": b"x" * min(chunk, size - start), "more_body": start + chunk < size}
        for start in range(0, size, chunk)
    ]

    async def receive() -> dict[str, object]:
        return messages.pop(0)

    async def app(scope: object, receive: object, send: object) -> None:
        while (await receive())["more_body"]:  # type: ignore[operator]
            pass

    async def send(message: object) -> None:
        pass

    limits = BodyLimits(
        app, max_inflight_bytes=2**30, idle_timeout_s=5.0, read_timeout_s=10.0, retry_after_s=1
    )
    scope = {"type": "http", "headers": [(b"content-length", str(size).encode())]}
    await limits(scope, receive, send)


@pytest.mark.parametrize(
    ("size", "trims"), [(TRIM_AFTER_BYTES, 1), (TRIM_AFTER_BYTES - 1, 0)], ids=["large", "small"]
)
def test_the_heap_is_trimmed_after_a_large_body_only(
    size: int, trims: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[bool] = []
    monkeypatch.setattr(body_limits, "trim_heap", lambda: calls.append(True) or True)
    asyncio.run(_post_through_limits(size))
    assert len(calls) == trims


def test_trimming_the_heap_reaches_the_c_library() -> None:
    # glibc on the machines the service runs on (Linux); elsewhere trim_heap says it could not.
    assert trim_heap() is (platform.libc_ver()[0] == "glibc")
