"""Slots that cannot be squatted (issue 28): sixteen idle WebSockets (silent, or sending only hellos) lock a
seventeenth client out for no longer than the first-message deadline or the idle timeout; one client address
holds at most USQA_SCAN_SLOTS_PER_CLIENT streams while other addresses are served; a foreign browser Origin is
refused unless allowed, and a client sending no Origin is not refused for it.

The squatters of the lockout cases connect from loopback, which the per-client limit does not count; the
per-client case names its addresses with X-Forwarded-For, which the test server trusts from 127.0.0.1 as
uvicorn does behind a local proxy."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.support.resource_probes import first_answer, no_server_errors, wait_for_free_slots
from usqa.contracts.protocol import CloseCode
from usqa.service.api.scan_messages import MSG_CLIENT_SESSIONS_REASON

from .conftest import Figures, ServiceUnderTest, service_under_test

SECTION = "resource_bounds"
SLOTS: Final = 16  # the production default of USQA_MAX_SCAN_SESSIONS
PER_CLIENT: Final = 4  # the production default of USQA_SCAN_SLOTS_PER_CLIENT
WARD_PC, OTHER_PC = "198.51.100.20", "198.51.100.21"
FIRST_MESSAGE_S: Final = 1.0
IDLE_S: Final = 2.0
ALLOWED_ORIGIN: Final = "https://viewer.example"
OPEN_TIMEOUT_S: Final = 10.0
# The seventeenth client retries this often, as usqa.client does after a 1013, until it is served.
RETRY_S: Final = 0.1
LOCKOUT_MARGIN_S: Final = 1.0


@pytest.fixture(scope="module")
def slots(reliability_registry: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceUnderTest]:
    with service_under_test(
        reliability_registry,
        tmp_path_factory.mktemp("slots"),
        max_scan_sessions=SLOTS,
        scan_first_message_s=FIRST_MESSAGE_S,
        scan_idle_timeout_s=IDLE_S,
        scan_slots_per_client=PER_CLIENT,
        scan_allowed_origins=(ALLOWED_ORIGIN,),
    ) as running:
        yield running


def _squat(service: ServiceUnderTest, streams: contextlib.ExitStack, hello: bool) -> ClientConnection:
    ws = streams.enter_context(connect(service.live.ws, open_timeout=OPEN_TIMEOUT_S, close_timeout=1))
    assert json.loads(ws.recv(timeout=OPEN_TIMEOUT_S))["type"] == "ready"
    if hello:
        ws.send(json.dumps({"type": "hello", "format": "encoded"}))
    return ws


def _keep_saying_hello(squatters: list[ClientConnection]) -> None:
    for ws in squatters:
        with contextlib.suppress(ConnectionClosed):
            ws.send(json.dumps({"type": "hello", "format": "encoded"}))


def _lockout(service: ServiceUnderTest, squatters: list[ClientConnection], hellos: bool) -> tuple[float, int]:
    """Seconds until a seventeenth client is served, and how many of its tries were refused with 1013."""
    started = time.monotonic()
    refused = 0
    while time.monotonic() - started < IDLE_S + FIRST_MESSAGE_S + 10:
        if hellos:
            _keep_saying_hello(squatters)
        with contextlib.ExitStack() as attempt:
            ws = attempt.enter_context(connect(service.live.ws, open_timeout=OPEN_TIMEOUT_S, close_timeout=1))
            kind, code, _ = first_answer(ws)
            if kind == "ready":
                ws.send(json.dumps({"type": "end"}))
                return time.monotonic() - started, refused
            assert (kind, code) == ("closed", CloseCode.TRY_AGAIN), (kind, code)
            refused += 1
        time.sleep(RETRY_S)
    raise AssertionError("the seventeenth client was never served")


@pytest.mark.parametrize("squatter", ["silent", "hellos only"])
def test_idle_sockets_do_not_lock_out_a_seventeenth_client(
    slots: ServiceUnderTest, figures: Figures, squatter: str
) -> None:
    hellos = squatter == "hellos only"
    limit_s = (IDLE_S if hellos else FIRST_MESSAGE_S) + LOCKOUT_MARGIN_S
    mark = slots.log.mark()
    wait_for_free_slots(slots, SLOTS)
    with contextlib.ExitStack() as streams:
        squatters = [_squat(slots, streams, hellos) for _ in range(SLOTS)]
        seconds, refused = _lockout(slots, squatters, hellos)
    figures.count("slots.idle_sockets", SLOTS)
    figures.count("slots.lockouts_over_limit", seconds > limit_s)
    figures.peak(f"slots.lockout_{'hellos' if hellos else 'silent'}_s", round(seconds, 2))
    figures.peak("slots.idle_timeout_s", IDLE_S)
    figures.peak("slots.first_message_s", FIRST_MESSAGE_S)
    figures.count("slots.refused_while_squatted", refused)
    figures.note(
        f"slots: {SLOTS} squatting sockets (silent, or a hello every retry) against {SLOTS} slots; the first "
        f"message deadline is {FIRST_MESSAGE_S:g} s and the idle timeout {IDLE_S:g} s (production: 10 s, 20 s)"
    )
    assert refused > 0, "the squatters did not fill the slots"
    assert seconds <= limit_s, f"a seventeenth client waited {seconds:.1f} s ({squatter} squatters)"
    wait_for_free_slots(slots, SLOTS)
    no_server_errors(slots, mark)


def _from(service: ServiceUnderTest, streams: contextlib.ExitStack, address: str) -> ClientConnection:
    headers = {"X-Forwarded-For": address}
    return streams.enter_context(
        connect(service.live.ws, additional_headers=headers, open_timeout=OPEN_TIMEOUT_S, close_timeout=1)
    )


def test_one_address_cannot_take_every_slot(slots: ServiceUnderTest, figures: Figures) -> None:
    """One machine opens as many streams as there are slots: it never holds more than PER_CLIENT, the rest are
    refused with 1013 naming the setting, another machine is served beside it, and once the first machine's
    streams fall silent it is served again within the first-message deadline."""
    mark = slots.log.mark()
    wait_for_free_slots(slots, SLOTS)
    limiter = slots.live.app.state.service.sessions
    refusal = ("closed", CloseCode.TRY_AGAIN, MSG_CLIENT_SESSIONS_REASON.format(limit=PER_CLIENT))
    wrong, held, refused = [], 0, 0
    with contextlib.ExitStack() as streams:
        for i in range(SLOTS):
            answer = first_answer(_from(slots, streams, WARD_PC))
            # Read in-process: silent streams may already be closed by the deadline while the rest open.
            held = max(held, limiter.by_client[WARD_PC])
            refused += answer == refusal
            if answer[0] != "ready" and answer != refusal:
                wrong.append(f"{WARD_PC} stream {i}: {answer}")
        with contextlib.ExitStack() as other:
            answer = first_answer(_from(slots, other, OTHER_PC))
            if answer[0] != "ready":
                wrong.append(f"{OTHER_PC} beside {WARD_PC}'s streams: {answer}")
        started = time.monotonic()  # the first machine's streams say nothing: their slots come back
        while True:
            with contextlib.ExitStack() as attempt:
                kind, _, _ = first_answer(_from(slots, attempt, WARD_PC))
            if kind == "ready" or time.monotonic() - started > FIRST_MESSAGE_S + 10:
                break
            time.sleep(RETRY_S)
        back_after = time.monotonic() - started
    if kind != "ready":
        wrong.append(f"{WARD_PC} was not served again after its streams fell silent")
    figures.peak("slots.per_client_limit", PER_CLIENT)
    figures.peak("slots.one_address_held", held)
    figures.count("slots.one_address_refused", refused)
    figures.count("slots.per_client_wrong_answers", len(wrong) + (held != PER_CLIENT))
    figures.peak("slots.per_client_back_after_s", round(back_after, 2))
    figures.note(
        f"per client: one address (X-Forwarded-For through a trusted local proxy) opens {SLOTS} silent "
        f"streams against USQA_SCAN_SLOTS_PER_CLIENT={PER_CLIENT}; another address is then served, and the "
        f"first is served again once its silent streams are closed by the {FIRST_MESSAGE_S:g} s first-message "
        "deadline; loopback clients are not counted"
    )
    assert held == PER_CLIENT and refused > 0, f"{WARD_PC} held {held} streams at once, {refused} refused"
    assert not wrong, "\n".join(wrong)
    assert back_after <= FIRST_MESSAGE_S + LOCKOUT_MARGIN_S, f"{WARD_PC} waited {back_after:.1f} s"
    wait_for_free_slots(slots, SLOTS)
    no_server_errors(slots, mark)


@pytest.mark.parametrize(
    ("origin", "accepted"),
    [(None, True), (ALLOWED_ORIGIN, True), ("https://evil.example", False), ("null", False)],
)
def test_a_foreign_origin_is_refused_unless_allowed(
    slots: ServiceUnderTest, figures: Figures, origin: str | None, accepted: bool
) -> None:
    with connect(slots.live.ws, origin=origin, open_timeout=OPEN_TIMEOUT_S) as ws:  # type: ignore[arg-type]
        kind, code, _ = first_answer(ws)
        if kind == "ready":
            ws.send(json.dumps({"type": "end"}))
    wrong = (kind == "ready") != accepted or (not accepted and code != CloseCode.POLICY)
    figures.count("origins.cases")
    figures.count("origins.wrong_answers", wrong)
    assert not wrong, f"Origin {origin!r}: {kind} {code}"
