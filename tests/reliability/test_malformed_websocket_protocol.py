"""Malformed input, WebSocket /ws/scan below the JSON layer: abrupt disconnects, unmasked and invalid
frames, bad close codes and protocol garbage after the handshake, through a raw socket. The server must
close without a server error and go on serving good streams (tests/support/websocket.py has the harness).
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.websocket import (
    DEADLINE_S,
    GOOD_FRAME,
    RawWebSocket,
    WsTally,
    closes_without_server_error,
    frame_bytes,
    raw_case,
)

from .conftest import Figures, ServiceUnderTest, cases, fuzz

SECTION = "malformed_input"


def _gone_at_once(raw: RawWebSocket) -> None:
    """Connect and vanish before reading the ready message."""


def _gone_mid_frame(raw: RawWebSocket) -> None:
    raw.send(frame_bytes(0x2, bytes(100_000))[:1_000])  # the header promises 100 kB


def _gone_mid_hello(raw: RawWebSocket) -> None:
    raw.send(frame_bytes(0x1, b'{"type": "hello", "format": "raw"}')[:12])


def _gone_after_a_frame(raw: RawWebSocket) -> None:
    raw.send_frame(0x2, GOOD_FRAME)


def _gone_after_ten_frames(raw: RawWebSocket) -> None:
    for _ in range(10):
        raw.send_frame(0x2, GOOD_FRAME)


def _gone_after_end(raw: RawWebSocket) -> None:
    raw.send_frame(0x1, b'{"type": "end"}')


def _unmasked_frame(raw: RawWebSocket) -> None:
    raw.send_frame(0x2, GOOD_FRAME, masked=False)
    closes_without_server_error(raw)


def _invalid_utf8_text(raw: RawWebSocket) -> None:
    raw.send_frame(0x1, b"\xff\xfe{}")
    closes_without_server_error(raw)


def _text_fragment_then_binary(raw: RawWebSocket) -> None:
    raw.send_frame(0x1, b'{"type":', fin=False)
    raw.send_frame(0x2, GOOD_FRAME)
    closes_without_server_error(raw)


def _close_with_a_bad_code(raw: RawWebSocket) -> None:
    raw.send_frame(0x8, struct.pack(">H", 999) + b"bye")
    closes_without_server_error(raw)


ABRUPT: dict[str, Callable[[RawWebSocket], None]] = {
    "gone before the ready message": _gone_at_once,
    "gone mid-frame": _gone_mid_frame,
    "gone mid-hello": _gone_mid_hello,
    "gone right after a frame": _gone_after_a_frame,
    "gone after ten frames": _gone_after_ten_frames,
    "gone after end": _gone_after_end,
    "unmasked frame": _unmasked_frame,
    "invalid UTF-8 text": _invalid_utf8_text,
    "text fragment then binary": _text_fragment_then_binary,
    "close frame with a bad code": _close_with_a_bad_code,
}


@pytest.mark.parametrize("how", sorted(ABRUPT))
def test_abrupt_disconnects_and_protocol_errors(
    service: ServiceUnderTest, figures: Figures, how: str
) -> None:
    tally = WsTally("abrupt")
    for _ in range(cases(1, 4)):
        raw_case(service, tally, how, ABRUPT[how])
    tally.finish(figures)


def test_protocol_garbage_after_the_handshake(service: ServiceUnderTest, figures: Figures) -> None:
    tally = WsTally("garbage")

    @fuzz(cases(4, 100), DEADLINE_S)
    @given(garbage=st.binary(min_size=1, max_size=512))
    def case(garbage: bytes) -> None:
        def act(raw: RawWebSocket) -> None:
            raw.send(garbage)
            raw.sock.shutdown(socket.SHUT_WR)  # no more bytes: an unfinished frame cannot keep it waiting
            closes_without_server_error(raw)

        raw_case(service, tally, f"garbage {garbage[:16]!r}", act)

    case()
    tally.finish(figures)
