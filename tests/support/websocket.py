"""The WebSocket malformed-input harness (tests/reliability/test_malformed_websocket*.py): streams checked
against the protocol message by message, the tally of what went wrong, and a raw socket for what a
well-behaved client library cannot send."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from websockets.exceptions import ConnectionClosed, InvalidMessage
from websockets.sync.client import ClientConnection, connect

from tests.reliability.conftest import (
    Figures,
    ServiceUnderTest,
    unclear_reason,
)
from tests.service.conftest import frame_of_level, png_bytes
from usqa.contracts.protocol import CloseCode
from usqa.service.api.scan_messages import (
    SERVER_MESSAGES,
    ScanHello,
)

RECV_TIMEOUT_S = 10.0
DEADLINE_S = 60.0
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
