"""Bounded server-wide (issue 28): sixteen parallel bodies that stop half-way hold neither the in-flight body
budget nor their connections past the body idle timeout; past the budget, bodies are refused at once (503)."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import httpx
import pytest

from tests.support.resource_probes import no_server_errors

from ..service.conftest import frame_of_level, png_bytes
from .conftest import Figures, ServiceUnderTest, service_under_test

SECTION = "resource_bounds"
IDLE_S: Final = 1.0
BUDGET: Final = 8 * 1024 * 1024
DECLARED: Final = 1024 * 1024
CLIENTS: Final = 16


@pytest.fixture(scope="module")
def bodies(
    reliability_registry: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceUnderTest]:
    with service_under_test(
        reliability_registry,
        tmp_path_factory.mktemp("bodies"),
        max_inflight_body_bytes=BUDGET,
        body_idle_timeout_s=IDLE_S,
        body_read_timeout_s=IDLE_S * 4,
    ) as running:
        yield running


def _stall(service: ServiceUnderTest) -> socket.socket:
    sock = socket.create_connection((service.live.host, service.live.port), timeout=10)
    head = (
        f"POST /assess HTTP/1.1\r\nHost: {service.live.host}\r\nContent-Type: application/octet-stream\r\n"
        f"Content-Length: {DECLARED}\r\n\r\n"
    ).encode()
    sock.sendall(head + bytes(DECLARED // 2))
    return sock


def _status(sock: socket.socket) -> int:
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return 0
        data += chunk
    return int(data.split()[1])


def test_stalled_bodies_are_cut_and_the_budget_holds(bodies: ServiceUnderTest, figures: Figures) -> None:
    mark = bodies.log.mark()
    with contextlib.ExitStack() as stack:
        started = time.monotonic()
        sockets = [stack.enter_context(_stall(bodies)) for _ in range(CLIENTS)]
        statuses = [_status(sock) for sock in sockets]
        slowest = time.monotonic() - started
    frame = png_bytes(frame_of_level(90, seed=5))
    after = httpx.post(
        f"{bodies.live.http}/assess", content=frame, headers={"Content-Type": "image/png"}, timeout=10
    )
    refused, cut = statuses.count(503), statuses.count(408)
    figures.count("bodies.stalled_clients", CLIENTS)
    figures.count("bodies.budget_refusals", refused)
    figures.count("bodies.stalled_wrong_answers", CLIENTS - refused - cut)
    figures.peak("bodies.stalled_all_answered_s", round(slowest, 2))
    figures.note(
        f"stalled bodies: {CLIENTS} clients each declaring 1 MiB and sending half, against an 8 MiB in-flight "
        f"budget and a {IDLE_S:g} s body idle timeout (production: 256 MiB, 15 s)"
    )
    assert refused + cut == CLIENTS, json.dumps(statuses)
    assert refused > 0 and cut > 0
    assert slowest < IDLE_S + 3
    assert after.status_code == 200, "the budget did not come back after the stalled bodies"
    no_server_errors(bodies, mark)
