"""Malformed input, WebSocket /ws/scan: wrong hellos, text where frames belong, garbage JSON, wrong sizes,
oversized messages, floods, protocol garbage and abrupt disconnects.

Each case is one stream. The protocol (docs/service.md, usqa/service/api/scan_messages.py) says what the server
answers: a text message gets `configured` or one `error` (seq null), a frame gets one `result` or one
`error` (its seq), a message over the limit gets an `error`, the summary and close 1009, `end` gets the
summary and close 1000. Every message must match its schema and every error message must be clear; the
server must not log an error or a traceback; and after each bad stream a good one must still work.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import ValidationError
from websockets.exceptions import ConnectionClosed, InvalidMessage
from websockets.sync.client import ClientConnection, connect

from usqa.contracts.protocol import CloseCode
from usqa.service.api.scan_messages import (
    MSG_BAD_JSON,
    MSG_TOO_BIG_REASON,
    MSG_UNKNOWN_TYPE,
    SERVER_MESSAGES,
    ScanHello,
    ShownType,
)
from usqa.service.settings import Settings

from ..service.conftest import frame_of_level, png_bytes
from .conftest import WS_MESSAGE_LIMIT, Figures, ServiceUnderTest, cases, fuzz, unclear_reason

SECTION = "malformed_input"

RECV_TIMEOUT_S = 10.0
DEADLINE_S = 60.0
FLOOD_FRAMES = 300
MAX_PIXELS = int(Settings.model_fields["max_frame_pixels"].default)
# Close codes the protocol or RFC 6455 allow after client mistakes at the WebSocket layer itself:
# 1002 protocol error, 1007 invalid UTF-8, 1009 too big; 1006 is a connection that just dropped.
PROTOCOL_CLOSES = {1000, 1002, 1006, 1007, 1009}
GOOD_FRAME = png_bytes(frame_of_level(90, shape=(48, 64), seed=11))
# Log lines that come from outside usqa's code, with the cause: counted and stated in the report, not
# failed on. Empty: uvicorn's ERROR-with-traceback for a non-UTF-8 text frame (it closes with 1007, as
# RFC 6455 says) is now a WARNING without traceback (usqa/service/api/log_redaction.py).
KNOWN_LOG_GAPS: dict[str, str] = {}


class ProtocolViolation(Exception):
    """The server answered something the protocol does not say (or nothing)."""


@dataclass
class WsTally:
    part: str
    cases: int = 0
    messages: int = 0
    crashes: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    unclear: list[str] = field(default_factory=list)
    good_sessions: int = 0
    good_failures: list[str] = field(default_factory=list)
    known_gaps: dict[str, int] = field(default_factory=dict)

    def finish(self, figures: Figures) -> None:
        figures.count("ws.cases", self.cases)
        figures.count(f"ws.{self.part}.cases", self.cases)
        figures.count("ws.messages", self.messages)
        figures.count("ws.crashes", len(self.crashes))
        figures.count("ws.protocol_violations", len(self.violations))
        figures.count("ws.unclear_messages", len(self.unclear))
        figures.count("ws.good_sessions_after_bad", self.good_sessions)
        figures.count("ws.good_session_failures", len(self.good_failures))
        figures.count("ws.known_gap_cases", sum(self.known_gaps.values()))
        for cause, count in self.known_gaps.items():
            figures.note(f"known gap, {count} cases: {cause}")
        failures = [*self.crashes, *self.violations, *self.unclear, *self.good_failures]
        assert self.cases > 0
        assert not failures, f"{len(failures)} problems in {self.cases} {self.part} streams:\n" + "\n".join(
            failures[:8]
        )


# -- talking to the server -------------------------------------------------------------------------------


def receive(ws: ClientConnection, tally: WsTally, label: str) -> dict[str, Any]:
    """The next server message, checked against its schema; error messages checked for clarity."""
    try:
        raw = ws.recv(timeout=RECV_TIMEOUT_S)
    except TimeoutError as exc:
        raise ProtocolViolation("no answer within the timeout") from exc
    if not isinstance(raw, str):
        raise ProtocolViolation(f"a binary message from the server: {raw[:40]!r}")
    message: dict[str, Any] = json.loads(raw)
    kind = message.get("type")
    if kind not in SERVER_MESSAGES:
        raise ProtocolViolation(f"an unknown message type {kind!r}")
    try:
        SERVER_MESSAGES[kind].model_validate(message)
    except ValidationError as exc:
        raise ProtocolViolation(f"a {kind} message off its schema: {exc}") from exc
    if kind == "error":
        reason = unclear_reason(message["message"])
        if reason is not None:
            tally.unclear.append(f"{label}: {message['code']}: {reason}: {message['message'][:120]!r}")
    return message


def expect(ws: ClientConnection, tally: WsTally, label: str, *kinds: str) -> dict[str, Any]:
    message = receive(ws, tally, label)
    if message["type"] not in kinds:
        raise ProtocolViolation(f"expected {' or '.join(kinds)}, got {json.dumps(message)[:200]}")
    return message


def close_of(ws: ClientConnection) -> tuple[int | None, str]:
    """Read until the server closes; the close code and reason."""
    try:
        for _ in range(1000):
            ws.recv(timeout=RECV_TIMEOUT_S)
    except ConnectionClosed:
        return ws.close_code, ws.close_reason or ""
    except TimeoutError:
        return None, "the server did not close"
    return None, "the server kept talking"


def reply_to_text(text: str) -> str:
    """What the protocol answers a text message with: `configured`, an error code, or `end`."""
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError):
        return "bad_message"
    if not isinstance(raw, dict) or "type" not in raw:
        return "bad_message"
    if raw["type"] == "end":
        return "end"
    if raw["type"] != "hello":
        return "bad_message"
    try:
        ScanHello.model_validate(raw)
    except ValidationError:
        return "bad_hello"
    return "configured"


def stream(
    service: ServiceUnderTest,
    tally: WsTally,
    label: str,
    messages: list[str | bytes],
    frame_replies: Callable[[bytes], set[str]] | None = None,
) -> None:
    """One stream: every message answered as the protocol says, then `end`, the summary and close 1000."""
    tally.cases += 1
    mark = service.log.mark()
    try:
        with connect(service.live.ws, open_timeout=RECV_TIMEOUT_S, close_timeout=2) as ws:
            expect(ws, tally, label, "ready")
            ended = False
            for message in messages:
                tally.messages += 1
                ws.send(message)
                if isinstance(message, str):
                    wanted = reply_to_text(message)
                    if wanted == "end":
                        ended = True
                        break
                    reply = expect(ws, tally, label, "configured" if wanted == "configured" else "error")
                    if reply["type"] == "error" and (reply["code"], reply["seq"]) != (wanted, None):
                        raise ProtocolViolation(f"expected a {wanted} error, got {reply}")
                else:
                    reply = expect(ws, tally, label, "result", "error")
                    allowed = frame_replies(message) if frame_replies else {"result", "error"}
                    outcome = reply["type"] if reply["type"] == "result" else reply["code"]
                    if outcome not in allowed and reply["type"] not in allowed:
                        raise ProtocolViolation(
                            f"a frame answered with {outcome}, expected {sorted(allowed)}"
                        )
            if not ended:
                ws.send(json.dumps({"type": "end"}))
            expect(ws, tally, label, "summary")
            code, reason = close_of(ws)
            if code != CloseCode.NORMAL:
                raise ProtocolViolation(f"closed with {code} {reason!r} after end, not {CloseCode.NORMAL}")
    except ProtocolViolation as exc:
        tally.violations.append(f"{label}: {exc}")
    except (ConnectionClosed, InvalidMessage, OSError) as exc:
        tally.crashes.append(f"{label}: the connection broke: {type(exc).__name__}: {exc}")
    after_bad_stream(service, tally, label, mark)


def after_bad_stream(service: ServiceUnderTest, tally: WsTally, label: str, mark: int) -> None:
    """The server logged nothing alarming, and a good stream still works."""
    problem = good_stream_problem(service)
    logged = []
    for line in service.log.since(mark):
        cause = next((cause for start, cause in KNOWN_LOG_GAPS.items() if line.startswith(start)), None)
        if cause is None:
            logged.append(line)
        else:
            tally.known_gaps[cause] = tally.known_gaps.get(cause, 0) + 1
    if logged:
        tally.crashes.append(f"{label}: the server logged: {'; '.join(logged)[:500]}")
    if problem is None:
        tally.good_sessions += 1
    else:
        tally.good_failures.append(f"a good stream after {label}: {problem}")


def good_stream_problem(service: ServiceUnderTest) -> str | None:
    try:
        with connect(service.live.ws, open_timeout=RECV_TIMEOUT_S, close_timeout=2) as ws:
            if json.loads(ws.recv(timeout=RECV_TIMEOUT_S))["type"] != "ready":
                return "no ready message"
            ws.send(GOOD_FRAME)
            result = json.loads(ws.recv(timeout=RECV_TIMEOUT_S))
            if result["type"] != "result":
                return f"a good frame got {result}"
            ws.send(json.dumps({"type": "end"}))
            if json.loads(ws.recv(timeout=RECV_TIMEOUT_S))["type"] != "summary":
                return "no summary"
            code, reason = close_of(ws)
            return None if code == CloseCode.NORMAL else f"closed with {code} {reason!r}"
    except (ConnectionClosed, InvalidMessage, OSError, TimeoutError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"


# -- raw sockets: what a well-behaved client library cannot send -----------------------------------------


class RawWebSocket:
    """A bare socket that did the opening handshake: frames are written byte by byte, lies included."""

    def __init__(self, service: ServiceUnderTest) -> None:
        live = service.live
        self.sock = socket.create_connection((live.host, live.port), timeout=RECV_TIMEOUT_S)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET /ws/scan HTTP/1.1\r\nHost: {live.host}:{live.port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ProtocolViolation("the handshake was cut")
            response += chunk
        if not response.startswith(b"HTTP/1.1 101"):
            raise ProtocolViolation(f"the handshake was refused: {response[:80]!r}")

    def send_frame(self, opcode: int, payload: bytes, *, fin: bool = True, masked: bool = True) -> None:
        self.sock.sendall(frame_bytes(opcode, payload, fin=fin, masked=masked))

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def drain(self) -> bytes:
        """What the server sends up to its close frame, or until it drops the connection or goes silent."""
        received = b""
        self.sock.settimeout(RECV_TIMEOUT_S)
        try:
            while chunk := self.sock.recv(65536):
                received += chunk
                if close_frames(received):
                    break
        except (TimeoutError, ConnectionResetError):
            pass
        return received

    def close(self) -> None:
        self.sock.close()


def frame_bytes(opcode: int, payload: bytes, *, fin: bool = True, masked: bool = True) -> bytes:
    """One RFC 6455 frame as a client writes it (masked), or as it must not (unmasked)."""
    head = bytes([(0x80 if fin else 0) | opcode])
    length = len(payload)
    mask_bit = 0x80 if masked else 0
    if length < 126:
        head += bytes([mask_bit | length])
    elif length < 1 << 16:
        head += bytes([mask_bit | 126]) + struct.pack(">H", length)
    else:
        head += bytes([mask_bit | 127]) + struct.pack(">Q", length)
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def close_frames(data: bytes) -> list[int]:
    """Close codes in the server's (unmasked) frames; a frame not yet complete is left out."""
    codes, position = [], 0
    while position + 2 <= len(data):
        opcode, length = data[position] & 0x0F, data[position + 1] & 0x7F
        position += 2
        if length == 126:
            (length,) = struct.unpack_from(">H", data, position)
            position += 2
        elif length == 127:
            (length,) = struct.unpack_from(">Q", data, position)
            position += 8
        if position + length > len(data):
            break
        if opcode == 0x8 and length >= 2:
            codes.append(struct.unpack_from(">H", data, position)[0])
        position += length
    return codes


def raw_case(
    service: ServiceUnderTest, tally: WsTally, label: str, act: Callable[[RawWebSocket], None]
) -> None:
    """A stream driven over a bare socket: no server error close, no log, then a good stream."""
    tally.cases += 1
    tally.messages += 1
    mark = service.log.mark()
    try:
        raw = RawWebSocket(service)
        try:
            act(raw)
        finally:
            raw.close()
    except ProtocolViolation as exc:
        tally.violations.append(f"{label}: {exc}")
    except OSError as exc:
        tally.crashes.append(f"{label}: {type(exc).__name__}: {exc}")
    after_bad_stream(service, tally, label, mark)


def closes_without_server_error(raw: RawWebSocket) -> None:
    codes = close_frames(raw.drain())
    if CloseCode.SERVER_ERROR in codes:
        raise ProtocolViolation(f"the server closed with {CloseCode.SERVER_ERROR} (internal error)")
    unexpected = [code for code in codes if code not in PROTOCOL_CLOSES]
    if unexpected:
        raise ProtocolViolation(f"closed with {unexpected}")


# -- strategies ------------------------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
HELLO_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, -1, 1, 65535, 100_000, 2**31, 2**63]),
    st.floats(allow_nan=False),
    st.text(max_size=12),
    st.sampled_from(["raw", "encoded", "RAW", "png", ""]),
    st.lists(st.integers(), max_size=2),
)
NASTY_TEXTS = [
    "",
    " ",
    "null",
    "[]",
    '"hello"',
    "{}",
    '{"type": null}',
    '{"type": ["hello"]}',
    '{"type": {"type": "end"}}',
    '{"type": "HELLO"}',
    '{"type": "hello", "type": "dance"}',
    '{"type": "hello", "format": "raw", "width": 1e999, "height": 2}',
    '{"type": NaN}',
    "\ufeff{}",
    "[" * 100_000 + "]" * 100_000,
    '{"type": ' + "[" * 5_000 + "]" * 5_000 + "}",
    '{"type": "hello", "format": "raw", "width": ' + "9" * 5_000 + ', "height": 1}',
    '{"type": "' + "x" * 100_000 + '"}',
]


@st.composite
def hellos(draw: st.DrawFn) -> str:
    """Hello messages with any format, width and height, or extra fields."""
    hello: dict[str, Any] = {"type": "hello"}
    for key in draw(st.lists(st.sampled_from(["format", "width", "height", "extra"]), unique=True)):
        hello[key] = draw(HELLO_VALUES)
    return json.dumps(hello)


@st.composite
def raw_frames(draw: st.DrawFn) -> tuple[int, int, list[int]]:
    """A raw hello's size and the byte lengths of the frames that follow (mostly the wrong ones)."""
    width = draw(st.one_of(st.integers(1, 96), st.sampled_from([100_000, 70_000])))
    height = draw(st.one_of(st.integers(1, 96), st.sampled_from([100_000, 65_536])))
    lengths = draw(
        st.lists(
            st.one_of(st.integers(1, 20_000), st.just(width * height), st.just(width * height + 1)),
            min_size=1,
            max_size=3,
        )
    )
    return width, height, [min(length, WS_MESSAGE_LIMIT) for length in lengths]


def replies_after(hello: str) -> Callable[[bytes], set[str]]:
    """What a good PNG frame gets after `hello`: a result, unless a valid raw hello made it raw bytes."""
    if reply_to_text(hello) == "configured":
        config = ScanHello.model_validate(json.loads(hello))
        if config.format == "raw" and config.width is not None and config.height is not None:
            return raw_replies(config.width, config.height)
    return lambda frame: {"result"}


def raw_replies(width: int, height: int) -> Callable[[bytes], set[str]]:
    def replies(frame: bytes) -> set[str]:
        if width * height > MAX_PIXELS:
            return {"frame_too_large"}
        return {"result"} if len(frame) == width * height else {"raw_size_mismatch"}

    return replies


# -- the cases -------------------------------------------------------------------------------------------


def test_text_and_garbage_json_get_an_error_each(service: ServiceUnderTest, figures: Figures) -> None:
    tally = WsTally("text")

    @fuzz(cases(6, 200), DEADLINE_S)
    @given(
        texts=st.lists(
            st.one_of(st.text(max_size=60), JSON_VALUES.map(json.dumps), hellos()), min_size=1, max_size=4
        )
    )
    @example(texts=NASTY_TEXTS[:8])
    @example(texts=NASTY_TEXTS[8:])
    def case(texts: list[str]) -> None:
        stream(service, tally, f"texts {[t[:40] for t in texts]}", list(texts))

    case()
    tally.finish(figures)


def test_wrong_hellos_are_refused_and_the_stream_goes_on(service: ServiceUnderTest, figures: Figures) -> None:
    tally = WsTally("hello")

    @fuzz(cases(6, 200), DEADLINE_S)
    @given(hello=hellos())
    @example(hello=json.dumps({"type": "hello", "format": "raw"}))
    @example(hello=json.dumps({"type": "hello", "format": "raw", "width": -1, "height": 10}))
    @example(hello=json.dumps({"type": "hello", "format": "raw", "width": 7, "height": 3, "extra": [1]}))
    def case(hello: str) -> None:
        stream(service, tally, f"hello {hello[:80]}", [hello, GOOD_FRAME], replies_after(hello))

    case()
    tally.finish(figures)


def test_raw_frames_of_the_wrong_size(service: ServiceUnderTest, figures: Figures) -> None:
    tally = WsTally("raw_sizes")

    @fuzz(cases(5, 150), DEADLINE_S)
    @given(plan=raw_frames(), seed=st.integers(0, 255))
    @example(plan=(100_000, 100_000, [1000]), seed=0)
    def case(plan: tuple[int, int, list[int]], seed: int) -> None:
        width, height, lengths = plan
        hello = json.dumps({"type": "hello", "format": "raw", "width": width, "height": height})
        frames: list[str | bytes] = [bytes([seed]) * length for length in lengths]
        stream(
            service,
            tally,
            f"raw {width}x{height} frames of {lengths} bytes",
            [hello, *frames],
            raw_replies(width, height),
        )

    case()
    tally.finish(figures)


def test_frames_that_are_not_images(service: ServiceUnderTest, figures: Figures) -> None:
    tally = WsTally("bad_frames")
    seed = bytearray(GOOD_FRAME)

    @fuzz(cases(6, 200), DEADLINE_S)
    @given(
        frames=st.lists(
            st.one_of(
                st.binary(min_size=1, max_size=4096),
                st.tuples(st.integers(0, len(seed) - 1), st.integers(0, 7)).map(
                    lambda at: (
                        bytes(seed[: at[0]]) + bytes([seed[at[0]] ^ (1 << at[1])]) + bytes(seed[at[0] + 1 :])
                    )
                ),
                st.integers(1, len(seed) - 1).map(lambda cut: bytes(seed[:cut])),
            ),
            min_size=1,
            max_size=3,
        )
    )
    def case(frames: list[bytes]) -> None:
        stream(service, tally, f"frames of {[len(f) for f in frames]} bytes", list(frames))

    case()
    tally.finish(figures)


def test_messages_over_the_limit_close_with_1009(service: ServiceUnderTest, figures: Figures) -> None:
    tally = WsTally("oversized")

    @fuzz(cases(2, 20), DEADLINE_S)
    @given(extra=st.integers(1, 64 * 1024), text=st.booleans())
    def case(extra: int, text: bool) -> None:
        tally.cases += 1
        tally.messages += 1
        label = f"a {'text' if text else 'binary'} message {extra} bytes over the limit"
        mark = service.log.mark()
        try:
            with connect(service.live.ws, open_timeout=RECV_TIMEOUT_S, close_timeout=2) as ws:
                expect(ws, tally, label, "ready")
                size = WS_MESSAGE_LIMIT + extra
                ws.send("x" * size if text else bytes(size))
                error = expect(ws, tally, label, "error")
                if error["code"] != "message_too_big":
                    raise ProtocolViolation(f"expected message_too_big, got {error}")
                expect(ws, tally, label, "summary")
                closed = close_of(ws)
                if closed != (CloseCode.TOO_BIG, MSG_TOO_BIG_REASON):
                    raise ProtocolViolation(f"closed with {closed}, not {CloseCode.TOO_BIG}")
        except ProtocolViolation as exc:
            tally.violations.append(f"{label}: {exc}")
        except (ConnectionClosed, OSError) as exc:
            tally.crashes.append(f"{label}: the connection broke: {exc}")
        after_bad_stream(service, tally, label, mark)

    case()
    tally.finish(figures)


def test_a_flood_of_frames_is_absorbed(service: ServiceUnderTest, figures: Figures) -> None:
    """FLOOD_FRAMES frames as fast as the socket takes them: newest frame wins, every frame accounted for."""
    tally = WsTally("flood")
    variants = [
        cv2.imencode(".png", frame_of_level(40 + 10 * i, (96, 128), seed=i))[1].tobytes() for i in range(5)
    ]
    for round_ in range(cases(1, 3)):
        label = f"flood {round_}"
        tally.cases += 1
        mark = service.log.mark()
        started = time.perf_counter()
        try:
            with connect(service.live.ws, open_timeout=RECV_TIMEOUT_S, close_timeout=2) as ws:
                expect(ws, tally, label, "ready")
                for i in range(FLOOD_FRAMES):
                    ws.send(variants[i % len(variants)])
                tally.messages += FLOOD_FRAMES
                ws.send(json.dumps({"type": "end"}))
                results = 0
                while (message := receive(ws, tally, label))["type"] != "summary":
                    if message["type"] != "result":
                        raise ProtocolViolation(f"a good frame in a flood got {message}")
                    results += 1
                counts = message["frames"]
                if counts["received"] != FLOOD_FRAMES or counts["scored"] != results:
                    raise ProtocolViolation(f"frames unaccounted for: {counts}, {results} results")
                if counts["scored"] + counts["dropped"] + counts["failed"] != FLOOD_FRAMES:
                    raise ProtocolViolation(f"frames unaccounted for: {counts}")
                if close_of(ws)[0] != CloseCode.NORMAL:
                    raise ProtocolViolation("no close 1000 after the flood")
            figures.peak("ws.flood_seconds", round(time.perf_counter() - started, 2))
            figures.peak("ws.flood_drop_rate", message["drop_rate"])
        except ProtocolViolation as exc:
            tally.violations.append(f"{label}: {exc}")
        except (ConnectionClosed, OSError) as exc:
            tally.crashes.append(f"{label}: the connection broke: {exc}")
        after_bad_stream(service, tally, label, mark)
    tally.finish(figures)


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


# -- regressions: what the fuzzing found, pinned ---------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000 + "]" * 100_000,  # json.loads raised RecursionError out of the receive loop
        '{"type": "hello", "format": "raw", "width": ' + "9" * 5_000 + ', "height": 1}',  # ValueError
    ],
    ids=["deeply-nested", "too-many-digits"],
)
def test_json_that_python_cannot_load_is_a_bad_message(service: ServiceUnderTest, text: str) -> None:
    """Regression: these escaped `_on_text`, ended the stream with 1011 and logged a traceback."""
    mark = service.log.mark()
    with connect(service.live.ws, open_timeout=RECV_TIMEOUT_S) as ws:
        assert json.loads(ws.recv(timeout=RECV_TIMEOUT_S))["type"] == "ready"
        ws.send(text)
        error = json.loads(ws.recv(timeout=RECV_TIMEOUT_S))
        assert (error["type"], error["code"], error["message"]) == ("error", "bad_message", MSG_BAD_JSON)
        ws.send(GOOD_FRAME)
        assert json.loads(ws.recv(timeout=RECV_TIMEOUT_S))["type"] == "result"
    assert service.log.since(mark) == []


def test_an_unknown_type_is_echoed_cut_short(service: ServiceUnderTest) -> None:
    """Regression: a 100 kB `type` came back whole in the error message."""
    with connect(service.live.ws, open_timeout=RECV_TIMEOUT_S) as ws:
        ws.recv(timeout=RECV_TIMEOUT_S)
        ws.send(json.dumps({"type": "x" * 100_000}))
        long = json.loads(ws.recv(timeout=RECV_TIMEOUT_S))["message"]
        ws.send(json.dumps({"type": [[[["deep"]]]]}))
        nested = json.loads(ws.recv(timeout=RECV_TIMEOUT_S))["message"]
    assert len(long) < 120 and long.startswith("unknown message type 'xxx")
    assert unclear_reason(long) is None and unclear_reason(nested) is None
    assert nested == MSG_UNKNOWN_TYPE.format(type=ShownType([[[["deep"]]]]))
